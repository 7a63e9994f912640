use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn secret() -> SecretKey {
    SecretKey::new(SECRET).expect("valid")
}

fn seed() -> [u8; 32] {
    std::array::from_fn(|index| u8::try_from(index).expect("small"))
}

fn sealed(chunks: &[&[u8]]) -> Vec<u8> {
    let mut sealer = FrameSealer::new(secret(), seed());
    let mut body = Vec::new();
    for chunk in chunks {
        body.extend(sealer.data(chunk));
    }
    body.extend(sealer.end());
    body
}

/// Opens `body` fed in pieces of `step` bytes; returns the data and the terminal frame.
fn open(body: &[u8], step: usize) -> Result<(Vec<u8>, Frame), FrameError> {
    let mut opener = FrameOpener::new(secret(), seed());
    let mut data = Vec::new();
    let mut terminal = None;
    for piece in body.chunks(step.max(1)) {
        for frame in opener.push(piece)? {
            match frame {
                Frame::Data(bytes) => data.extend(bytes),
                other => terminal = Some(other),
            }
        }
    }
    opener.finish()?;
    Ok((data, terminal.expect("finished implies a terminal frame")))
}

#[test]
fn matches_the_fixed_vector() {
    // From Python's hmac/hashlib over the lines of docs/file-transfer.md, seed bytes 0..=31.
    let expected = "440000000568656c6c6f67157e3c11ed9e35a8ad509d1b795d8c7ce4ec6f55773006f19a52de4c976ad2\
                    4500000000a7cadec5c72b125fb85d63002b2cd79f672dea767bd74ba26c40d94f022953b0";
    assert_eq!(hex::encode(sealed(&[b"hello", b""])), expected);
}

#[test]
fn any_split_of_a_body_opens_to_the_same_bytes() {
    let payload: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let body = sealed(&[&payload[..1000], &payload[1000..]]);
    for step in [1, 2, 5, 37, 1000, 1042, body.len()] {
        let (data, terminal) = open(&body, step).expect("authentic");
        assert_eq!(data, payload, "step {step}");
        assert_eq!(terminal, Frame::End);
    }
    let (empty, _) = open(&sealed(&[]), 3).expect("an empty body is one end frame");
    assert!(empty.is_empty());
}

#[test]
fn large_data_is_split_into_bounded_frames() {
    let payload = vec![7u8; MAX_FRAME_PAYLOAD * 2 + 3];
    let body = sealed(&[&payload]);
    assert_eq!(body.len(), payload.len() + 4 * (HEADER_LEN + TAG_LEN));
    assert_eq!(open(&body, 65536).expect("authentic").0, payload);
}

#[test]
fn an_error_frame_ends_the_body_with_its_payload() {
    let mut sealer = FrameSealer::new(secret(), seed());
    let mut body = sealer.data(b"partial");
    body.extend(sealer.error(br#"{"error":"sandbox_error"}"#));
    let (data, terminal) = open(&body, 4).expect("authentic");
    assert_eq!(data, b"partial");
    assert_eq!(
        terminal,
        Frame::Error(br#"{"error":"sandbox_error"}"#.to_vec())
    );
}

#[test]
fn every_tampering_is_refused() {
    let body = sealed(&[b"first", b"second"]);
    let first_len = HEADER_LEN + 5 + TAG_LEN;
    let second_len = HEADER_LEN + 6 + TAG_LEN;

    let mut flipped = body.clone();
    flipped[HEADER_LEN] ^= 1;
    assert_eq!(open(&flipped, 7), Err(FrameError::BadTag { index: 0 }));

    let mut swapped = body[first_len..first_len + second_len].to_vec();
    swapped.extend_from_slice(&body[..first_len]);
    swapped.extend_from_slice(&body[first_len + second_len..]);
    assert_eq!(open(&swapped, 7), Err(FrameError::BadTag { index: 0 }));

    let dropped = [&body[..first_len], &body[first_len + second_len..]].concat();
    assert_eq!(open(&dropped, 7), Err(FrameError::BadTag { index: 1 }));

    let cut = &body[..body.len() - HEADER_LEN - TAG_LEN];
    assert_eq!(open(cut, 7), Err(FrameError::Truncated));
    assert_eq!(open(&body[..body.len() - 1], 7), Err(FrameError::Truncated));

    let mut trailing = body.clone();
    trailing.push(0);
    assert_eq!(
        open(&trailing, body.len() + 1),
        Err(FrameError::TrailingBytes)
    );
    assert_eq!(open(&trailing, 1), Err(FrameError::TrailingBytes));

    let mut other_seed = FrameOpener::new(secret(), [0; 32]);
    assert_eq!(other_seed.push(&body), Err(FrameError::BadTag { index: 0 }));
    let mut other_key = FrameOpener::new(SecretKey::new(&"x".repeat(32)).expect("valid"), seed());
    assert_eq!(other_key.push(&body), Err(FrameError::BadTag { index: 0 }));
}

#[test]
fn malformed_headers_are_refused_before_any_payload() {
    let mut opener = FrameOpener::new(secret(), seed());
    assert_eq!(
        opener.push(&[b'D', 0xff, 0xff, 0xff, 0xff]),
        Err(FrameError::TooLong {
            index: 0,
            length: u64::from(u32::MAX)
        })
    );
    let mut opener = FrameOpener::new(secret(), seed());
    assert_eq!(
        opener.push(&[b'Z', 0, 0, 0, 0]),
        Err(FrameError::UnknownKind {
            index: 0,
            byte: b'Z'
        })
    );
    let mut opener = FrameOpener::new(secret(), seed());
    assert_eq!(
        opener.push(&[b'E', 0, 0, 0, 1]),
        Err(FrameError::EndWithPayload { index: 0 })
    );
}

#[test]
fn a_supplied_digest_is_the_one_the_tags_cover() {
    fn reversed_sha256(bytes: &[u8]) -> [u8; 32] {
        let mut digest = crate::auth::sha256(bytes);
        digest.reverse();
        digest
    }
    let mut sealer = FrameSealer::new(secret(), seed()).with_digest(reversed_sha256);
    let mut body = sealer.data(b"payload");
    body.extend(sealer.end());
    let mut same = FrameOpener::new(secret(), seed()).with_digest(reversed_sha256);
    assert_eq!(
        same.push(&body),
        Ok(vec![Frame::Data(b"payload".to_vec()), Frame::End])
    );
    let mut default = FrameOpener::new(secret(), seed());
    assert_eq!(default.push(&body), Err(FrameError::BadTag { index: 0 }));
    let mut native = FrameSealer::new(secret(), seed()).with_digest(crate::auth::sha256);
    assert_eq!(
        native.data(b"payload"),
        FrameSealer::new(secret(), seed()).data(b"payload"),
        "the crate's own SHA-256 is the default"
    );
}
