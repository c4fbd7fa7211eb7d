//! WebSocket conformance: the `/ws/echo` endpoint, and RFC 6455 handling of fragments,
//! control frames between fragments, invalid UTF-8 and protocol errors.

use anyhow::Result;
use caucus_protocol::close;
use caucus_tests::Client;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::support::TestServer;

async fn echo_socket(
    server: &TestServer,
) -> Result<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>> {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/echo", server.address)).await?;
    Ok(socket)
}

async fn next(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Result<Message> {
    Ok(tokio::time::timeout(caucus_tests::WAIT, socket.next())
        .await?
        .ok_or_else(|| anyhow::anyhow!("ended"))??)
}

#[tokio::test]
async fn the_echo_endpoint_is_off_by_default() -> Result<()> {
    let server = TestServer::start().await;
    match tokio_tungstenite::connect_async(format!("ws://{}/ws/echo", server.address)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("expected 404, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn the_echo_endpoint_echoes_text_binary_and_fragmented_messages() -> Result<()> {
    let server = TestServer::start_with(|config| config.conformance_echo = true).await;
    let mut socket = echo_socket(&server).await?;
    socket.send(Message::text("héllo")).await?;
    assert_eq!(next(&mut socket).await?, Message::text("héllo"));
    socket.send(Message::binary(vec![0u8, 159, 146, 150])).await?;
    assert_eq!(next(&mut socket).await?, Message::binary(vec![0u8, 159, 146, 150]));

    // A text message in three fragments, with a ping between them.
    socket.send(Message::Frame(Frame::message(b"frag".to_vec(), OpCode::Data(Data::Text), false))).await?;
    socket.send(Message::Ping(b"mid".to_vec().into())).await?;
    socket.send(Message::Frame(Frame::message(b"men".to_vec(), OpCode::Data(Data::Continue), false))).await?;
    socket.send(Message::Frame(Frame::message(b"ted".to_vec(), OpCode::Data(Data::Continue), true))).await?;
    let mut got = Vec::new();
    while got.len() < 2 {
        match next(&mut socket).await? {
            Message::Pong(payload) => got.push(format!("pong:{}", String::from_utf8_lossy(&payload))),
            Message::Text(text) => got.push(text.to_string()),
            _ => {}
        }
    }
    assert_eq!(got, ["pong:mid", "fragmented"]);
    Ok(())
}

#[tokio::test]
async fn invalid_utf8_in_fragments_closes_1007_and_a_bad_continuation_closes_1002() -> Result<()> {
    let server = TestServer::start_with(|config| config.conformance_echo = true).await;
    let mut socket = echo_socket(&server).await?;
    socket.send(Message::Frame(Frame::message(vec![b'o', 0xce], OpCode::Data(Data::Text), false))).await?;
    socket.send(Message::Frame(Frame::message(vec![0xff], OpCode::Data(Data::Continue), true))).await?;
    assert!(
        matches!(next(&mut socket).await?, Message::Close(Some(frame)) if u16::from(frame.code) == close::INVALID_PAYLOAD)
    );

    let mut socket = echo_socket(&server).await?;
    // A continuation with no message to continue breaks the protocol.
    socket
        .send(Message::Frame(Frame::message(b"orphan".to_vec(), OpCode::Data(Data::Continue), true)))
        .await?;
    assert!(
        matches!(next(&mut socket).await?, Message::Close(Some(frame)) if u16::from(frame.code) == close::PROTOCOL_ERROR)
    );
    Ok(())
}

#[tokio::test]
async fn a_client_close_is_answered_and_the_handshake_completes() -> Result<()> {
    let server = TestServer::start_with(|config| config.conformance_echo = true).await;
    let mut socket = echo_socket(&server).await?;
    socket.send(Message::Close(None)).await?;
    // The server answers with its own close frame, then the stream ends cleanly.
    assert!(matches!(next(&mut socket).await?, Message::Close(_)));
    assert!(tokio::time::timeout(caucus_tests::WAIT, socket.next()).await?.is_none());
    let _ = Client::connect(server.address).await?;
    Ok(())
}
