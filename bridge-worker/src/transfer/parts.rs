//! Cutting an upload into the parts written with `writeFile`.

/// Raw bytes per part: its base64 (5.3 MiB) stays far below the 32 MiB limit of one Durable
/// Object RPC call, and the Worker holds at most one part and its encoding at a time.
pub const PART_BYTES: usize = 4 << 20;

/// Collects an upload's bytes and hands out full parts, in order.
#[derive(Debug)]
pub struct PartSplitter {
    part_bytes: usize,
    pending: Vec<u8>,
    next_index: u32,
    total: u64,
}

impl Default for PartSplitter {
    fn default() -> Self {
        Self::new(PART_BYTES)
    }
}

impl PartSplitter {
    /// Parts of `part_bytes` bytes (the last one shorter).
    pub fn new(part_bytes: usize) -> Self {
        Self {
            part_bytes,
            pending: Vec::new(),
            next_index: 0,
            total: 0,
        }
    }

    /// Takes `data`; returns the parts it completes, with their indices.
    pub fn push(&mut self, mut data: &[u8]) -> Vec<(u32, Vec<u8>)> {
        self.total += data.len() as u64;
        let mut parts = Vec::new();
        while !data.is_empty() {
            let room = self.part_bytes - self.pending.len();
            let (taken, rest) = data.split_at(room.min(data.len()));
            self.pending.extend_from_slice(taken);
            data = rest;
            if self.pending.len() == self.part_bytes {
                parts.push(self.take());
            }
        }
        parts
    }

    /// The last, partial part, if any bytes are left.
    pub fn finish(&mut self) -> Option<(u32, Vec<u8>)> {
        (!self.pending.is_empty()).then(|| self.take())
    }

    /// Bytes taken so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    fn take(&mut self) -> (u32, Vec<u8>) {
        let index = self.next_index;
        self.next_index += 1;
        let part = std::mem::replace(&mut self.pending, Vec::with_capacity(self.part_bytes));
        (index, part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_full_and_in_order_whatever_the_input_pieces() {
        let data: Vec<u8> = (0..=255u8).cycle().take(2_500).collect();
        for piece in [1, 7, 1000, 1024, 2500] {
            let mut splitter = PartSplitter::new(1024);
            let mut parts: Vec<(u32, Vec<u8>)> = data
                .chunks(piece)
                .flat_map(|chunk| splitter.push(chunk))
                .collect();
            parts.extend(splitter.finish());
            let sizes: Vec<usize> = parts.iter().map(|(_, part)| part.len()).collect();
            assert_eq!(sizes, [1024, 1024, 452], "pieces of {piece}");
            let indices: Vec<u32> = parts.iter().map(|(index, _)| *index).collect();
            assert_eq!(indices, [0, 1, 2]);
            let joined: Vec<u8> = parts.iter().flat_map(|(_, part)| part.clone()).collect();
            assert_eq!(joined, data);
            assert_eq!(splitter.total(), 2_500);
        }
    }

    #[test]
    fn nothing_in_means_no_part() {
        let mut splitter = PartSplitter::new(8);
        assert!(splitter.push(b"").is_empty());
        assert_eq!(splitter.finish(), None);
        let mut exact = PartSplitter::new(4);
        assert_eq!(exact.push(b"abcd"), [(0, b"abcd".to_vec())]);
        assert_eq!(
            exact.finish(),
            None,
            "an exact multiple leaves no empty part"
        );
    }
}
