//! The scripts behind `/files/upload` and `/files/download` (docs/file-transfer.md).
//!
//! An upload arrives as base64 parts written next to its target (`writeFile` is the only way into
//! a container that takes bytes, and one call carries at most 32 MiB); the assembly script checks
//! that every byte arrived, then lays the file or tree down and moves it into place in one rename,
//! so a failed upload never leaves a half-written target. A download is a command whose stdout is
//! the base64 of the file or of a tar stream, so any byte value survives the container's text
//! events. Both run under `bash` for `pipefail`: the image ships it, and a failing `tar` must not
//! hide behind a succeeding `base64`.

use bridge_protocol::api::{DownloadRequest, TransferFormat};
use bridge_protocol::remote_path::RemotePath;

/// Exit code of a download whose source is missing or not of the requested kind.
pub const SOURCE_MISSING_EXIT_CODE: i32 = 66;

/// Permission bits of an uploaded file when the client names none.
pub const DEFAULT_FILE_MODE: u32 = 0o644;

/// `$0` of the transfer scripts, so they are recognisable in process listings.
const SCRIPT_NAME: &str = "paperclip-bridge-transfer";

const ASSEMBLE: &str = r#"set -u -o pipefail
format=$1 staging=$2 target=$3 mode=$4 bytes=$5
fail() { printf 'paperclip-bridge: %s\n' "$1" >&2; rm -rf -- "$staging"; exit 1; }
mkdir -p -- "$staging" || fail "cannot create $staging"
total=0
for part in "$staging"/part-*; do
  [ -e "$part" ] || continue
  size=$(wc -c < "$part") || fail "cannot read the staged part $part"
  total=$((total + size))
done
[ "$total" -eq "$bytes" ] || fail "$bytes bytes were sent for $target, but $total arrived in the sandbox"
parts() { if [ "$bytes" -gt 0 ]; then cat -- "$staging"/part-*; fi; }
case $format in
file)
  if [ -d "$target" ] && [ ! -L "$target" ]; then fail "$target is a directory"; fi
  parts > "$staging/file" || fail "cannot assemble $target"
  chmod "$mode" "$staging/file" && mv -f -- "$staging/file" "$target" || fail "cannot move the file into place at $target"
  ;;
tar)
  mkdir -p -- "$staging/tree" || fail "cannot create $staging/tree"
  if [ "$bytes" -gt 0 ]; then
    parts | tar -xf - -C "$staging/tree" --no-same-owner || fail "the archive does not extract into $target"
  fi
  rm -rf -- "$target" && mv -- "$staging/tree" "$target" || fail "cannot put the tree in place at $target"
  ;;
esac
rm -rf -- "$staging""#;

const DOWNLOAD: &str = r#"set -u -o pipefail
format=$1 source=$2 follow=$3
shift 3
missing() { printf 'paperclip-bridge: %s\n' "$1" >&2; exit 66; }
case $format in
file)
  [ -f "$source" ] || missing "$source is not a regular file in the sandbox"
  base64 -w 0 < "$source"
  ;;
tar)
  [ -d "$source" ] || missing "$source is not a directory in the sandbox"
  cd -- "$source" || exit 1
  options=()
  for pattern in "$@"; do options+=("--exclude=$pattern"); done
  if [ "$follow" = true ]; then options+=(--dereference); fi
  shopt -s dotglob nullglob
  entries=(*)
  if [ "${#entries[@]}" -eq 0 ]; then
    tar -cf - -T /dev/null | base64 -w 0
  else
    tar -cf - "${options[@]}" -- "${entries[@]}" | base64 -w 0
  fi
  ;;
esac"#;

/// The directory an upload's parts are staged in: beside its target, so the final rename stays
/// on one filesystem, and named after the execution, so concurrent uploads never meet.
pub fn upload_staging(target: &RemotePath, execution_id: &str) -> String {
    let path = target.as_str().trim_end_matches('/');
    let parent = match path.rfind('/') {
        Some(0) | None => "",
        Some(index) => &path[..index],
    };
    format!("{parent}/.paperclip-upload-{execution_id}")
}

/// The path of part `index` (parts sort by name in upload order).
pub fn part_path(staging: &str, index: u32) -> String {
    format!("{staging}/part-{index:06}")
}

/// The argv that lays `bytes` staged bytes down at `target`.
pub fn assemble_argv(
    format: TransferFormat,
    staging: &str,
    target: &RemotePath,
    mode: u32,
    bytes: u64,
) -> Vec<String> {
    [
        "bash",
        "-c",
        ASSEMBLE,
        SCRIPT_NAME,
        format.as_str(),
        staging,
        target.as_str(),
        &format!("{mode:o}"),
        &bytes.to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The script that removes an abandoned upload's parts.
pub fn discard_script(staging: &str) -> String {
    format!("rm -rf -- {}", super::quote(staging))
}

/// The argv whose stdout is the base64 of what `request` asks for.
pub fn download_argv(request: &DownloadRequest, source: &RemotePath) -> Vec<String> {
    let follow = if request.follow_symlinks {
        "true"
    } else {
        "false"
    };
    [
        "bash",
        "-c",
        DOWNLOAD,
        SCRIPT_NAME,
        request.format.as_str(),
        source.as_str(),
        follow,
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(request.exclude.iter().cloned())
    .collect()
}

// The tests run the scripts with a real bash and tar, which only a native build has.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
