// The body of a streamed response, written to straight from wasm.
//
// `Response::from_stream` costs every chunk a channel send, a task wake-up, a `pull` promise
// and a closure; here a write is one copy out of wasm memory and one `enqueue`. The queue is
// bounded in bytes: once it holds `highWaterMark`, the writer waits on `room()` until the
// reader has taken some.
export class Outlet {
  constructor(highWaterMark) {
    this.controller = null;
    this.waiter = null;
    this.finished = false;
    this.stream = new ReadableStream(
      {
        start: (controller) => {
          this.controller = controller;
        },
        pull: () => this.wake(),
        cancel: () => {
          this.finished = true;
          this.wake();
        },
      },
      { highWaterMark, size: (chunk) => chunk.byteLength },
    );
  }

  // Queues a copy of `bytes` (a view of wasm memory); true while the queue has room for more.
  write(bytes) {
    if (this.finished) {
      return false;
    }
    this.controller.enqueue(bytes.slice());
    return this.controller.desiredSize > 0;
  }

  // Resolves once the queue has room again, or the stream is done.
  room() {
    if (this.finished || this.controller.desiredSize > 0) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  // Whether the stream takes no more writes: it was closed, or its reader cancelled it.
  get done() {
    return this.finished;
  }

  // Ends the stream after what was queued.
  close() {
    if (!this.finished) {
      this.finished = true;
      this.controller.close();
    }
    this.wake();
  }

  wake() {
    const waiter = this.waiter;
    this.waiter = null;
    if (waiter) {
      waiter();
    }
  }
}
