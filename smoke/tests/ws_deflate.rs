//! permessage-deflate (RFC 7692) against Python's `websockets` (which offers it by default) and
//! hand-made compressed frames: negotiation, echoes that really were compressed, publications
//! to compressing and plain subscribers alike, and a decompression bomb refused with 1009.

mod common;

use std::io::{BufReader, Read, Write};
use std::process::Command;
use std::time::Duration;

use flate2::{Compress, Compression, FlushCompress};
use smoke::prelude::*;

#[derive(Default)]
struct Echo;

#[smoke::server(ws = "127.0.0.1:0", ws_deflate = true, threads = 2, max_message = 1048576)]
impl Echo {
    #[on_open]
    fn open(&mut self, ws: &mut WsConn) {
        ws.subscribe("news");
    }

    #[on_message]
    fn message(&mut self, ws: &mut WsConn, message: Message) {
        match message {
            Message::Text(text) if text.starts_with("publish ") => ws.publish("news", &text[8..]),
            other => {
                let _ = ws.send(other);
            }
        }
    }
}

fn python(script: &str) -> String {
    let output = Command::new("python3").args(["-c", script]).output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[test]
fn python_websockets_negotiates_deflate_and_gets_compressed_echoes() {
    let server = Echo::spawn(Echo::config()).unwrap();
    let url = format!("ws://{}/", server.local_addr());
    let before = server.stats().bytes_out;
    let script = format!(
        r#"
import asyncio, os
from websockets.asyncio.client import connect
async def main():
    async with connect({url:?}, max_size=2**21) as ws:
        print(ws.response.headers["Sec-WebSocket-Extensions"])
        text = "all work and no play makes jack a dull boy. " * 5000
        for message in [text, text.encode(), "short", b"", os.urandom(300000), "é" * 1000]:
            await ws.send(message)
            assert await ws.recv() == message
        print("echoed")
asyncio.run(main())
"#
    );
    let out = python(&script);
    assert_eq!(
        out, "permessage-deflate; server_no_context_takeover; client_no_context_takeover\nechoed\n",
        "negotiated as documented"
    );
    // Two 225,000-byte repetitive messages and 300,000 random bytes went back: compressed,
    // the repetitive ones are a few kilobytes each.
    let sent = server.stats().bytes_out - before;
    assert!(sent < 300_000 + 60_000, "{sent} bytes sent: the text was not compressed");
}

#[test]
fn publications_reach_compressing_and_plain_subscribers_alike() {
    let server = Echo::spawn(Echo::config()).unwrap();
    let url = format!("ws://{}/", server.local_addr());
    let script = format!(
        r#"
import asyncio
from websockets.asyncio.client import connect
async def main():
    async with connect({url:?}) as zipped, connect({url:?}, compression=None) as plain:
        assert "Sec-WebSocket-Extensions" not in plain.response.headers
        news = "breaking: " + "the same story over and over " * 100
        await zipped.send("publish " + news)
        for ws in (zipped, plain):
            assert await ws.recv() == news
        await plain.send("publish short")
        for ws in (zipped, plain):
            assert await ws.recv() == "short"
        print("delivered")
asyncio.run(main())
"#
    );
    assert_eq!(python(&script), "delivered\n");
}

/// Upgrades a raw socket offering permessage-deflate; returns it after the 101.
fn upgraded(server: &ServerHandle) -> std::net::TcpStream {
    let mut stream = common::connect(server.local_addr());
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
        )
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let reply = common::http::read_reply(&mut reader, true).unwrap();
    assert_eq!(reply.status, 101);
    assert!(reply.header("sec-websocket-extensions").unwrap().starts_with("permessage-deflate"));
    stream
}

/// A masked, compressed client frame (RSV1) carrying `payload` deflated, without its tail.
fn compressed_frame(payload: &[u8], opcode: u8) -> Vec<u8> {
    let mut deflater = Compress::new_with_window_bits(Compression::best(), false, 15);
    let mut body = Vec::with_capacity(payload.len() / 100 + 1024);
    deflater.compress_vec(payload, &mut body, FlushCompress::Sync).unwrap();
    assert!(body.ends_with(&[0, 0, 0xff, 0xff]));
    body.truncate(body.len() - 4);
    let mask = [9, 8, 7, 6];
    let mut frame = vec![0x80 | 0x40 | opcode];
    match body.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= 0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(body.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads one server frame: (first byte, payload).
fn read_frame(stream: &mut std::net::TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    let len = match head[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            stream.read_exact(&mut n).unwrap();
            u16::from_be_bytes(n) as usize
        }
        127 => {
            let mut n = [0u8; 8];
            stream.read_exact(&mut n).unwrap();
            u64::from_be_bytes(n) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).unwrap();
    (head[0], payload)
}

#[test]
fn a_decompression_bomb_closes_with_1009_before_it_inflates_past_max_message() {
    let server = Echo::spawn(Echo::config()).unwrap();
    let mut stream = upgraded(&server);
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A compressed echo first: the server's answer comes compressed too (RSV1 set).
    let text = "compress me, compress me, compress me, compress me ".repeat(20);
    stream.write_all(&compressed_frame(text.as_bytes(), 1)).unwrap();
    let (first, payload) = read_frame(&mut stream);
    assert_eq!(first, 0x80 | 0x40 | 1, "a final compressed text frame");
    assert!(payload.len() < text.len() / 4);
    // 16 MiB of zeros in a few kilobytes, against a 1 MiB max_message.
    let bomb = compressed_frame(&vec![0u8; 16 << 20], 2);
    assert!(bomb.len() < 100 << 10, "{} bytes", bomb.len());
    stream.write_all(&bomb).unwrap();
    let (first, payload) = read_frame(&mut stream);
    assert_eq!(first, 0x88, "a close frame");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1009);
    // A frame with RSV1 where compression was not negotiated is still a protocol error.
    let mut plain = common::connect(server.local_addr());
    plain
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
    let mut reader = BufReader::new(plain.try_clone().unwrap());
    assert_eq!(common::http::read_reply(&mut reader, true).unwrap().status, 101);
    plain.write_all(&compressed_frame(b"not negotiated", 1)).unwrap();
    let (first, payload) = read_frame(&mut plain);
    assert_eq!((first, u16::from_be_bytes([payload[0], payload[1]])), (0x88, 1002));
}

/// The same sequence of similar messages through a shared and a dedicated server: the
/// dedicated one keeps each connection's context (as Python's default offer allows), answers
/// without the no-context parameters, and sends far fewer bytes for it.
#[test]
fn dedicated_contexts_are_negotiated_as_offered_and_compress_similar_messages_better() {
    let run = |config: Config| {
        let server = Echo::spawn(config).unwrap();
        let url = format!("ws://{}/", server.local_addr());
        let script = format!(
            r#"
import asyncio, json
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
async def main():
    async with connect({url:?}) as ws, connect({url:?}, compression=None) as plain:
        print(ws.response.headers["Sec-WebSocket-Extensions"])
        for tick in range(300):
            state = json.dumps({{"tick": tick, "players": [{{"id": i, "x": i * 10.5, "y": 3.25, "hp": 100}} for i in range(8)]}})
            await ws.send(state)
            assert await ws.recv() == state
        await ws.send("publish " + state)
        assert await ws.recv() == state and await plain.recv() == state
    offer = ClientPerMessageDeflateFactory(client_no_context_takeover=True)
    async with connect({url:?}, extensions=[offer], compression=None) as ws:
        print(ws.response.headers["Sec-WebSocket-Extensions"])
        await ws.send(state)
        assert await ws.recv() == state
asyncio.run(main())
"#
        );
        let before = server.stats().bytes_out;
        let out = python(&script);
        (out, server.stats().bytes_out - before)
    };
    let (shared_headers, shared_bytes) = run(Echo::config());
    let (dedicated_headers, dedicated_bytes) = run(Echo::config().ws_deflate_dedicated(true));
    assert_eq!(
        shared_headers,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover\n\
         permessage-deflate; server_no_context_takeover; client_no_context_takeover\n"
    );
    assert_eq!(dedicated_headers, "permessage-deflate\npermessage-deflate; client_no_context_takeover\n");
    assert!(dedicated_bytes * 2 < shared_bytes, "dedicated sent {dedicated_bytes} bytes, shared {shared_bytes}");
}
