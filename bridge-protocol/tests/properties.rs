//! Properties of the parsers and codecs that read what the network sends: whatever the bytes and
//! however they are cut, they decode the same and never panic.

use proptest::collection::vec;
use proptest::prelude::*;

use bridge_protocol::auth::{
    Authorization, AuthorizationError, Nonce, canonical_query, decode_query, encode_query,
};
use bridge_protocol::sse::{SseDecoder, SseEvent, SseItem, encode_comment, encode_event};

/// Splits `bytes` at the given fractions of its length (any cut, including inside a character
/// or between `\r` and `\n`) and feeds the pieces to one decoder.
fn decode_in_pieces(bytes: &[u8], cuts: &[prop::sample::Index]) -> Vec<SseItem> {
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut decoder = SseDecoder::new();
    let mut items = Vec::new();
    let mut start = 0;
    for point in points.into_iter().chain([bytes.len()]) {
        items.extend(decoder.push(&bytes[start..point]));
        start = point;
    }
    items
}

/// An item the bridge sends: an event (its data without `\r`, which SSE cannot carry; every
/// payload is JSON, which escapes it) or a heartbeat comment.
fn item() -> impl Strategy<Value = SseItem> {
    let event = (
        "[a-z]{1,12}",
        proptest::option::of(any::<u32>()),
        "[^\r]{0,200}",
    )
        .prop_map(|(event, id, data)| {
            SseItem::Event(SseEvent {
                event: Some(event),
                id: id.map(|id| id.to_string()),
                data,
            })
        });
    let comment = "[^\r\n]{0,40}".prop_map(|text| SseItem::Comment(text.trim_start().to_owned()));
    prop_oneof![4 => event, 1 => comment]
}

fn encode(items: &[SseItem]) -> String {
    items
        .iter()
        .map(|item| match item {
            SseItem::Event(event) => {
                let id = event
                    .id
                    .as_ref()
                    .map(|id| id.parse().expect("an id we made"));
                encode_event(event.event.as_deref().unwrap_or_default(), id, &event.data)
            }
            SseItem::Comment(text) => encode_comment(text),
        })
        .collect()
}

/// A valid header's parameters, rendered in any order with any of the allowed separators.
fn header() -> impl Strategy<Value = (String, u64, String, [u8; 32], String)> {
    (
        "[A-Za-z0-9._-]{1,32}",
        any::<u64>(),
        "[A-Za-z0-9_-]{16,64}",
        any::<[u8; 32]>(),
        Just(()).prop_perturb(|(), mut rng| {
            let mut order = [0, 1, 2, 3];
            for index in (1..order.len()).rev() {
                order.swap(index, rng.random_range(0..=index));
            }
            let separators = [",", ", ", " , ", ",  "];
            let picks: Vec<&str> = (0..3)
                .map(|_| separators[rng.random_range(0..separators.len())])
                .collect();
            format!(
                "{}{}{}{}{}{}{}",
                order[0], picks[0], order[1], picks[1], order[2], picks[2], order[3]
            )
        }),
    )
}

proptest! {
    #[test]
    fn any_cut_of_a_bridge_stream_decodes_to_what_was_sent(
        items in vec(item(), 0..12),
        cuts in vec(any::<prop::sample::Index>(), 0..16),
        crlf in any::<bool>(),
    ) {
        let mut encoded = encode(&items);
        if crlf {
            encoded = encoded.replace('\n', "\r\n");
        }
        let decoded = decode_in_pieces(encoded.as_bytes(), &cuts);
        prop_assert_eq!(&decoded, &items);
        let mut whole = SseDecoder::new();
        prop_assert_eq!(whole.push(encoded.as_bytes()), items);
        prop_assert!(!whole.has_partial_event());
    }

    #[test]
    fn garbage_never_panics_decodes_the_same_however_cut_and_leaves_the_decoder_usable(
        garbage in vec(any::<u8>(), 0..600),
        cuts in vec(any::<prop::sample::Index>(), 0..16),
    ) {
        let whole = SseDecoder::new().push(&garbage);
        prop_assert_eq!(decode_in_pieces(&garbage, &cuts), whole);
        let mut decoder = SseDecoder::new();
        decoder.push(&garbage);
        let after = decoder.push(b"\n\nevent: stdout\ndata: {\"data\":\"ok\"}\n\n");
        let expected = SseItem::Event(SseEvent {
            event: Some("stdout".into()),
            id: None,
            data: "{\"data\":\"ok\"}".into(),
        });
        prop_assert_eq!(after.last(), Some(&expected));
    }

    #[test]
    fn text_split_inside_characters_is_reassembled_whole(
        text in "\\PC{0,300}",
        cuts in vec(any::<prop::sample::Index>(), 1..24),
    ) {
        let data = text.replace('\r', "");
        let encoded = encode_event("stdout", Some(1), &data);
        let decoded = decode_in_pieces(encoded.as_bytes(), &cuts);
        let [SseItem::Event(event)] = decoded.as_slice() else {
            return Err(TestCaseError::fail(format!("one event expected: {decoded:?}")));
        };
        prop_assert_eq!(&event.data, &data);
    }

    #[test]
    fn a_valid_header_parses_back_whatever_its_parameter_order_and_spacing(
        (key_id, timestamp, nonce, signature, order) in header(),
        padding in "[ \t]{0,3}",
    ) {
        let parameters = [
            format!("KeyId={key_id}"),
            format!("Timestamp={timestamp}"),
            format!("Nonce={nonce}"),
            format!("Signature={}", hex::encode(signature)),
        ];
        let mut value = format!("{padding}PCB1-HMAC-SHA256 ");
        for character in order.chars() {
            match character.to_digit(10) {
                Some(index) => value.push_str(&parameters[index as usize]),
                None => value.push(character),
            }
        }
        value.push_str(&padding);
        let parsed = Authorization::parse(&value).map_err(|error| TestCaseError::fail(format!("{value}: {error}")))?;
        prop_assert_eq!(&parsed.key_id, &key_id);
        prop_assert_eq!(parsed.timestamp, timestamp);
        prop_assert_eq!(parsed.nonce.as_str(), nonce.as_str());
        prop_assert_eq!(parsed.signature, signature);
        prop_assert_eq!(Authorization::parse(&parsed.to_header_value()), Ok(parsed));
    }

    #[test]
    fn any_header_text_is_parsed_or_refused_without_panicking(
        value in prop_oneof![
            any::<String>(),
            "PCB1-HMAC-SHA256 [A-Za-z=, 0-9_-]{0,200}",
            "PCB1-HMAC-SHA256 (KeyId|Timestamp|Nonce|Signature)=[^,]{0,80}(, (KeyId|Timestamp|Nonce|Signature)=[^,]{0,80}){0,5}",
        ],
    ) {
        if let Ok(parsed) = Authorization::parse(&value) {
            prop_assert!(Nonce::parse(parsed.nonce.as_str()).is_ok());
            prop_assert_eq!(Authorization::parse(&parsed.to_header_value()), Ok(parsed));
        }
    }

    #[test]
    fn a_signature_that_is_not_64_lowercase_hex_digits_is_refused(
        signature in "[0-9a-fA-F]{0,70}",
    ) {
        let value = format!(
            "PCB1-HMAC-SHA256 KeyId=k, Timestamp=1, Nonce=AAAAAAAAAAAAAAAAAAAAAA, Signature={signature}"
        );
        let well_formed = signature.len() == 64 && !signature.bytes().any(|byte| byte.is_ascii_uppercase());
        match Authorization::parse(&value) {
            Ok(_) => prop_assert!(well_formed, "{}", signature),
            Err(error) => {
                prop_assert!(!well_formed);
                let expected = if signature.is_empty() {
                    matches!(error, AuthorizationError::BadParameter(_))
                } else {
                    error == AuthorizationError::BadSignature
                };
                prop_assert!(expected, "{:?}", error);
            }
        }
    }

    #[test]
    fn the_canonical_query_ignores_order_and_is_its_own_canonical_form(
        pairs in vec(("[a-zA-Z0-9 %&=+._~!*'()-]{0,12}", "[^&]{0,16}"), 0..8),
        seed in any::<u64>(),
    ) {
        let raw: Vec<String> = pairs
            .iter()
            .map(|(key, value)| format!("{}={}", key.replace(['&', '='], ""), value.replace('&', "")))
            .collect();
        let canonical = canonical_query(&raw.join("&"));
        let mut shuffled = raw.clone();
        shuffled.rotate_left(if raw.is_empty() { 0 } else { (seed as usize) % raw.len() });
        shuffled.reverse();
        prop_assert_eq!(canonical_query(&shuffled.join("&")), canonical.clone());
        prop_assert_eq!(canonical_query(&canonical), canonical.clone());
        let mut escaped = canonical.bytes().peekable();
        while let Some(byte) = escaped.next() {
            match byte {
                b'%' => {
                    let digits: Vec<u8> = escaped.by_ref().take(2).collect();
                    prop_assert!(
                        digits.len() == 2 && digits.iter().all(|digit| digit.is_ascii_digit() || (b'A'..=b'F').contains(digit)),
                        "{}", canonical
                    );
                }
                b'&' | b'=' | b'-' | b'.' | b'_' | b'~' => {}
                _ => prop_assert!(byte.is_ascii_alphanumeric(), "{}", canonical),
            }
        }
    }

    #[test]
    fn any_query_text_is_canonicalised_without_panicking(raw in any::<String>()) {
        let canonical = canonical_query(&raw);
        prop_assert_eq!(canonical_query(&canonical), canonical);
    }

    #[test]
    fn differently_escaped_queries_have_one_canonical_form_and_decode_to_their_pairs(
        pairs in vec(("\\PC{0,8}", "\\PC{0,8}"), 0..6),
    ) {
        let borrowed: Vec<(&str, String)> =
            pairs.iter().map(|(key, value)| (key.as_str(), value.clone())).collect();
        let strict = encode_query(&borrowed);
        let loose = pairs
            .iter()
            .map(|(key, value)| format!("{}={}", escape_loosely(key), escape_loosely(value)))
            .collect::<Vec<_>>()
            .join("&");
        prop_assert_eq!(canonical_query(&loose), canonical_query(&strict));
        prop_assert_eq!(decode_query(&strict), pairs);
    }
}

/// Escapes only what would change a query's structure or is not ASCII, in lowercase hex: a
/// spelling as different from [`encode_query`]'s as a client may use.
fn escape_loosely(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'&' | b'=' | b'%' | b'#' | b'+' | 0x80.. | ..=0x20 => format!("%{byte:02x}"),
            _ => char::from(byte).to_string(),
        })
        .collect()
}
