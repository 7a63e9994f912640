// The plugin manifest, imported by the Paperclip host. Generated from the binary:
// `paperclip-cloudflare-bridge --print-manifest` is the source of truth, and a test keeps this
// file equal to it (`cargo xtask manifest` rewrites it).
export default {
  "id": "paperclip-cloudflare-bridge",
  "apiVersion": 1,
  "version": "0.1.0",
  "displayName": "Cloudflare Sandbox bridge",
  "description": "Runs agent sandboxes in Cloudflare Sandbox containers through a bridge Worker you deploy (signed HMAC requests, streamed output).",
  "author": "paperclip-cloudflare-bridge contributors",
  "categories": [
    "automation"
  ],
  "capabilities": [
    "environment.drivers.register"
  ],
  "entrypoints": {
    "worker": "./dist/worker.js"
  },
  "environmentDrivers": [
    {
      "driverKey": "cloudflare-bridge",
      "kind": "sandbox_provider",
      "displayName": "Cloudflare Sandbox (bridge)",
      "description": "Sandboxes in Cloudflare Sandbox containers, driven through the paperclip-sandbox-bridge Worker.",
      "sandboxCapabilities": {
        "reusableLeases": true,
        "nativeSyncIn": true,
        "nativeSyncOut": true
      },
      "configSchema": {
        "properties": {
          "bridgeBaseUrl": {
            "description": "Origin of the deployed bridge Worker, e.g. https://paperclip-sandbox-bridge.example.workers.dev (https unless it runs on this machine).",
            "format": "uri",
            "title": "Bridge URL",
            "type": "string"
          },
          "bridgeRequestTimeoutMs": {
            "default": 30000,
            "description": "Deadline of bridge calls that run no command.",
            "maximum": 600000,
            "minimum": 1000,
            "type": "integer",
            "x-paperclip-advanced": true
          },
          "bridgeSecret": {
            "description": "The secret of keyId in the bridge's BRIDGE_HMAC_KEYS (at least 32 characters).",
            "format": "secret-ref",
            "title": "Bridge secret",
            "type": "string"
          },
          "keepAlive": {
            "default": false,
            "description": "Keep containers running while idle.",
            "type": "boolean"
          },
          "keyId": {
            "default": "main",
            "description": "Which BRIDGE_HMAC_KEYS entry bridgeSecret belongs to.",
            "title": "Key id",
            "type": "string"
          },
          "loginShell": {
            "default": true,
            "description": "Source /etc/profile and ~/.profile before each command.",
            "type": "boolean",
            "x-paperclip-advanced": true
          },
          "nativeSync": {
            "default": true,
            "description": "Move workspaces through the bridge's file routes; off, Paperclip falls back to base64 chunks through commands.",
            "type": "boolean",
            "x-paperclip-advanced": true
          },
          "normalizeId": {
            "default": true,
            "description": "Kept for compatibility: sandbox ids are always lower case.",
            "type": "boolean",
            "x-paperclip-advanced": true
          },
          "requestedCwd": {
            "default": "/workspace/paperclip",
            "description": "Absolute working directory of commands in the sandbox.",
            "type": "string"
          },
          "reuseLease": {
            "default": false,
            "description": "Keep one sandbox per environment across runs (requires keepAlive).",
            "type": "boolean"
          },
          "sessionId": {
            "default": "paperclip",
            "type": "string",
            "x-paperclip-advanced": true
          },
          "sessionStrategy": {
            "default": "named",
            "enum": [
              "named",
              "default"
            ],
            "type": "string",
            "x-paperclip-advanced": true
          },
          "sleepAfter": {
            "description": "Idle time before a container sleeps, e.g. \"10m\" (ignored with keepAlive).",
            "type": "string",
            "x-paperclip-advanced": true
          },
          "streamOutput": {
            "default": true,
            "description": "Stream command output to Paperclip as it is produced.",
            "type": "boolean"
          },
          "syncMaxBytes": {
            "default": 10737418240,
            "description": "Most bytes one native sync may bring out of the sandbox into Paperclip; a larger result fails with a clear error.",
            "maximum": 1125899906842624,
            "minimum": 1,
            "type": "integer",
            "x-paperclip-advanced": true
          },
          "timeoutMs": {
            "default": 300000,
            "description": "Default command timeout in milliseconds.",
            "maximum": 86400000,
            "minimum": 1000,
            "type": "integer"
          }
        },
        "required": [
          "bridgeBaseUrl",
          "bridgeSecret"
        ],
        "type": "object"
      }
    }
  ]
};
