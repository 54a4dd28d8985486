//! The frame codec: headers and masks against tungstenite's own, reassembly, UTF-8, the close
//! codes of each protocol violation, limits, and frames split at every byte.

use super::*;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame: FIN flag, opcode, masked payload.
fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    let mut masked = payload.to_vec();
    for (i, b) in masked.iter_mut().enumerate() {
        *b ^= MASK[i % 4];
    }
    out.extend_from_slice(&masked);
    out
}

/// Parses, unmasks and assembles every frame in `bytes`; returns the events as owned values.
fn run(bytes: &[u8]) -> Result<Vec<String>, Violation> {
    let mut assembler = Assembler::default();
    let mut events = Vec::new();
    let mut input = bytes.to_vec();
    let mut at = 0;
    while let Some(frame) = parse_client_frame(&input[at..], 1 << 20, false)? {
        let start = at + frame.header_len;
        let payload = &mut input[start..start + frame.payload_len];
        unmask(payload, frame.header.mask.unwrap(), 0);
        if let Some(event) = assembler.push(&frame.header, &input[start..start + frame.payload_len], 1 << 20)? {
            events.push(format!("{event:?}"));
        }
        assembler.release();
        at += frame.len();
    }
    Ok(events)
}

#[test]
fn frame_heads_are_the_ones_tungstenite_formats() {
    let opcodes = [OpCode::Data(Data::Text), OpCode::Data(Data::Binary), OpCode::Control(Control::Pong)];
    for opcode in opcodes {
        for len in [0, 1, 125, 126, 127, 0xffff, 0x10000, 1 << 40] {
            for rsv1 in [false, true] {
                let header = FrameHeader { is_final: true, rsv1, rsv2: false, rsv3: false, opcode, mask: None };
                let mut theirs = Vec::new();
                header.format(len as u64, &mut theirs).unwrap();
                assert_eq!(FrameHead::with_rsv1(opcode, len, rsv1).as_bytes(), theirs, "{opcode:?} {len} {rsv1}");
            }
        }
    }
}

#[test]
fn client_frame_headers_read_as_tungstenite_reads_them() {
    for len in [0u64, 5, 125, 126, 300, 0xffff, 0x10000] {
        for opcode in [OpCode::Data(Data::Continue), OpCode::Data(Data::Binary), OpCode::Control(Control::Ping)] {
            let is_final = !matches!(opcode, OpCode::Data(Data::Continue));
            let header = FrameHeader { is_final, rsv1: false, rsv2: false, rsv3: false, opcode, mask: Some(MASK) };
            let mut frame = Vec::new();
            header.format(len, &mut frame).unwrap();
            let header_len = frame.len();
            frame.resize(header_len + len as usize, 0);
            let ours = parse_client_frame(&frame, 1 << 20, false);
            if matches!(opcode, OpCode::Control(_)) && len > 125 {
                assert!(ours.is_err());
                continue;
            }
            let ours = ours.unwrap().expect("a whole frame");
            assert_eq!((ours.header, ours.header_len, ours.payload_len), (header, header_len, len as usize));
            for cut in 0..frame.len() {
                assert!(matches!(parse_client_frame(&frame[..cut], 1 << 20, false), Ok(None)), "cut {cut}");
            }
        }
    }
}

#[test]
fn unmasking_matches_the_bytewise_definition_at_every_offset_and_length() {
    let data: Vec<u8> = (0..67u8).collect();
    for offset in 0..4 {
        for len in 0..data.len() {
            let mut fast = data[..len].to_vec();
            unmask(&mut fast, MASK, offset);
            let slow: Vec<u8> = data[..len].iter().enumerate().map(|(i, b)| b ^ MASK[(offset + i) % 4]).collect();
            assert_eq!(fast, slow, "offset {offset}, len {len}");
        }
    }
}

#[test]
fn whole_and_fragmented_messages_come_out_whole() {
    assert_eq!(run(&client_frame(true, 1, b"Hello")).unwrap(), ["Text(\"Hello\")"]);
    assert_eq!(run(&client_frame(true, 2, &[1, 2, 3])).unwrap(), ["Binary([1, 2, 3])"]);
    let mut fragmented = client_frame(false, 1, b"Hel");
    fragmented.extend(client_frame(true, 9, b"ping in the middle"));
    fragmented.extend(client_frame(false, 0, b"l"));
    fragmented.extend(client_frame(true, 0, b"o"));
    assert_eq!(
        run(&fragmented).unwrap(),
        [
            "Ping([112, 105, 110, 103, 32, 105, 110, 32, 116, 104, 101, 32, 109, 105, 100, 100, 108, 101])",
            "Text(\"Hello\")"
        ]
    );
    let big = vec![7u8; 70_000];
    assert_eq!(run(&client_frame(true, 2, &big)).unwrap().len(), 1, "64-bit length form");
}

#[test]
fn utf8_is_validated_across_fragments() {
    let euro = "€".as_bytes(); // three bytes, split across fragments
    let mut split = client_frame(false, 1, &euro[..1]);
    split.extend(client_frame(true, 0, &euro[1..]));
    assert_eq!(run(&split).unwrap(), ["Text(\"€\")"]);
    assert_eq!(run(&client_frame(true, 1, &[0xff])).unwrap_err().code, 1007);
    let mut bad_start = client_frame(false, 1, &[0xc0, 0x80]);
    bad_start.extend(client_frame(true, 0, b"ok"));
    assert_eq!(run(&bad_start).unwrap_err().code, 1007, "refused at the first fragment");
    let mut truncated = client_frame(false, 1, &euro[..2]);
    truncated.extend(client_frame(true, 0, b""));
    assert_eq!(run(&truncated).unwrap_err().code, 1007, "incomplete at the end");
}

#[test]
fn protocol_violations_get_their_close_codes() {
    let unmasked = [0x81, 0x02, b'h', b'i'];
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (unmasked.to_vec(), 1002),
        (
            {
                let mut f = client_frame(true, 1, b"x");
                f[0] |= 0x40;
                f
            },
            1002,
        ), // RSV1
        (client_frame(true, 3, b"x"), 1002),      // reserved data opcode
        (client_frame(true, 0xb, b"x"), 1002),    // reserved control opcode
        (client_frame(false, 9, b"x"), 1002),     // fragmented ping
        (client_frame(true, 9, &[0; 126]), 1002), // control above 125
        (client_frame(true, 0, b"x"), 1002),      // stray continuation
        (
            {
                let mut f = client_frame(false, 1, b"a");
                f.extend(client_frame(true, 1, b"b"));
                f
            },
            1002,
        ),
        (client_frame(true, 8, &[0x03]), 1002),                // one-byte close
        (client_frame(true, 8, &1005u16.to_be_bytes()), 1002), // reserved close code
        (client_frame(true, 8, &999u16.to_be_bytes()), 1002),
        (client_frame(true, 8, &[0x03, 0xe8, 0xff]), 1007), // bad reason
    ];
    for (bytes, code) in cases {
        assert_eq!(run(&bytes).map_err(|v| v.code), Err(code), "{bytes:02x?}");
    }
    let long_form = |len_byte: u8, extended: &[u8]| {
        let mut f = vec![0x82, 0x80 | len_byte];
        f.extend_from_slice(extended);
        f.extend_from_slice(&MASK);
        f
    };
    let codes = |f: Vec<u8>| run(&f).map_err(|v| v.code);
    assert_eq!(codes(long_form(126, &[0, 5])), Err(1002), "16-bit form for 5 bytes");
    assert_eq!(codes(long_form(127, &5u64.to_be_bytes())), Err(1002), "64-bit form for 5 bytes");
    assert_eq!(codes(long_form(127, &300u64.to_be_bytes())), Err(1002), "64-bit form for 300 bytes");
    assert_eq!(codes(long_form(127, &(1u64 << 63 | 70_000).to_be_bytes())), Err(1002), "the 64-bit top bit");
    assert_eq!(run(&client_frame(true, 8, &[0x03, 0xe8, b'o', b'k'])).unwrap(), ["Close(Some(1000), \"ok\")"]);
    assert_eq!(run(&client_frame(true, 8, b"")).unwrap(), ["Close(None, \"\")"]);
    assert_eq!(run(&client_frame(true, 8, &3000u16.to_be_bytes())).unwrap(), ["Close(Some(3000), \"\")"]);
}

#[test]
fn oversized_messages_are_refused_before_buffering() {
    let frame = client_frame(true, 2, &[0; 100]);
    assert_eq!(parse_client_frame(&frame[..8], 50, false).unwrap_err().code, 1009, "known from the header alone");
    let mut assembler = Assembler::default();
    let header = FrameHeader { is_final: false, opcode: OpCode::Data(Data::Binary), ..FrameHeader::default() };
    assert_eq!(assembler.push(&header, &[0; 40], 50), Ok(None));
    let last = FrameHeader { is_final: true, opcode: OpCode::Data(Data::Continue), ..FrameHeader::default() };
    assert_eq!(assembler.push(&last, &[0; 40], 50).unwrap_err().code, 1009);
}

#[test]
fn incomplete_frames_wait_at_every_split() {
    let frame = client_frame(true, 1, &vec![b'a'; 300]);
    for split in 0..frame.len() {
        assert!(parse_client_frame(&frame[..split], 1 << 20, false).unwrap().is_none(), "split at {split}");
    }
}

#[cfg(feature = "deflate")]
#[test]
fn a_plain_frame_splits_back_into_its_opcode_and_payload() {
    for len in [0, 5, 125, 126, 70_000] {
        let payload = vec![7u8; len];
        let mut frame = FrameHead::new(OpCode::Data(Data::Binary), len).as_bytes().to_vec();
        frame.extend_from_slice(&payload);
        assert_eq!(split_frame(&frame), Some((OpCode::Data(Data::Binary), &payload[..])));
        assert_eq!(split_frame(&frame[..frame.len() - 1]), None, "cut short");
    }
}

#[test]
fn a_frame_written_has_the_head_its_length_needs() {
    for len in [0, 1, 125, 126, 65_535, 65_536] {
        let mut sink = crate::proto::TestSink::new();
        let payload = vec![7u8; len];
        write_frame(&mut sink, OpCode::Data(Data::Binary), &payload);
        let head = FrameHead::new(OpCode::Data(Data::Binary), len);
        assert_eq!(&sink.out[..head.as_bytes().len()], head.as_bytes(), "{len} bytes");
        assert_eq!(&sink.out[head.as_bytes().len()..], &payload[..], "{len} bytes");
        let expected_head_len = match len {
            0..=125 => 2,
            126..=65_535 => 4,
            _ => 10,
        };
        assert_eq!(sink.out.len(), expected_head_len + len);
        assert_eq!(sink.out[0], 0x82);
    }
}

#[test]
fn server_frames_are_unmasked_and_close_reasons_fit() {
    let mut sink = crate::proto::TestSink::new();
    write_frame(&mut sink, OpCode::Data(Data::Text), b"hi");
    assert_eq!(sink.out, [0x81, 0x02, b'h', b'i']);
    assert_eq!(
        FrameHead::new(OpCode::Data(Data::Binary), 70_000).as_bytes(),
        [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
    );
    sink.out.clear();
    write_close_frame(&mut sink, 1000, &"é".repeat(100));
    let out = sink.out;
    assert_eq!(out[1] as usize, out.len() - 2);
    assert!(out.len() - 2 <= 125);
    assert!(std::str::from_utf8(&out[4..]).is_ok(), "truncated on a character boundary");
}
