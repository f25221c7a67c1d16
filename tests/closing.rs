//! How sockets end: a client's close frame is answered, and a client that
//! stops answering pings is told why with close code 4001.

mod common;

use std::time::Duration;

use async_std::task::block_on;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::Message;
use common::*;
use futures_util::StreamExt as _;

const T: Duration = Duration::from_secs(10);

#[test]
fn a_client_close_frame_is_answered() {
    let server = Server::start(&["--", "/bin/sh"]);
    block_on(async {
        for protocol in [Proto::Terminado, Proto::Binary] {
            let mut t = server.open(protocol).await;
            t.ws.close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))
            .await
            .unwrap();
            // Whatever output was in flight, then the server's reply to our
            // close: a close frame, not a dropped connection.
            let reply = loop {
                match next(&mut t.ws, T).await {
                    Some(Message::Close(frame)) => break frame,
                    Some(_) => continue,
                    None => panic!("the connection ended without a close frame"),
                }
            };
            assert_eq!(reply.map(|f| f.code), Some(CloseCode::Normal));
        }
    });
    eventually("both sessions ended", T, || server.sessions().is_empty());
}

#[test]
fn a_client_that_stops_answering_pings_is_closed_with_4001() {
    let server = Server::start(&["--ping-interval", "300ms", "--", "/bin/sh"]);
    block_on(async {
        let mut dead = server.open(Proto::Terminado).await;
        // Not reading means not answering pings. The session ends (it is
        // not resumable) once the server has given up on us.
        eventually("the silent client's session ended", T, || {
            server.sessions().is_empty()
        });
        // Now read what the server sent meanwhile: pings, then its close.
        let code = loop {
            match dead.ws.next().await {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        assert_eq!(code, Some(4001));
    });
}

/// `--max-sessions-per-client`: one user (or address) cannot take every
/// place. Counted by authenticated user: ann's third terminal is refused
/// while bob, from the same address, still gets one.
#[test]
fn one_client_cannot_take_every_place() {
    let server = Server::start(&[
        "--max-sessions",
        "8",
        "--max-sessions-per-client",
        "2",
        "--credential",
        "ann:one",
        "--credential",
        "bob:two",
        "--",
        "/bin/sh",
    ]);
    block_on(async {
        let ann = basic("ann", "one");
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(server.open_with(&[("Authorization", &ann)]).await);
        }
        let mut third = connect_with(&server.url("/ws"), &[("Authorization", &ann)])
            .await
            .unwrap();
        let refused = Closed::read(&mut third, T).await;
        assert!(refused.frame.is_some(), "a close frame");
        assert_eq!(refused.code(), 1013);
        assert!(
            refused.reason().contains("user ann"),
            "{}",
            refused.reason()
        );
        let bob = basic("bob", "two");
        let _theirs = server.open_with(&[("Authorization", &bob)]).await;
    });
}

/// `--once`: one session, then the server exits with the child's code.
#[test]
fn once_serves_one_session_and_exits_with_its_code() {
    let mut server = Server::start(&["--once", "--", "/bin/sh", "-c", "read x; exit 7"]);
    block_on(async {
        let mut t = server.open(Proto::Terminado).await;
        // While it runs, it is the only one.
        let mut other = server.connect("/ws", Proto::Terminado).await;
        assert_eq!(Closed::read(&mut other, T).await.code(), 1013);
        t.type_text("go\r").await;
        assert_eq!(Closed::read(&mut t.ws, T).await.code(), 1000);
    });
    let status = server
        .wait_exit(T)
        .expect("webterm exits after its one session");
    assert_eq!(status.code(), Some(7));
}

/// `--exit-when-empty`: the server stays while a session exists and exits
/// (status 0) once none has for that long. The session is opened at once,
/// well within the eight seconds the server would wait (its quiet period
/// starts with the server, so a session opened later would race it).
#[test]
fn exit_when_empty_waits_for_the_last_session() {
    let mut server = Server::start(&["--exit-when-empty", "8s", "--", "/bin/sh"]);
    block_on(async {
        let mut t = server.open(Proto::Terminado).await;
        // Longer than the quiet period, with the session open: still here.
        // (The wait is the behaviour under test, not a synchronisation.)
        async_std::task::sleep(Duration::from_secs(9)).await;
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "exited with a session open"
        );
        t.type_text("exit\r").await;
        Closed::read(&mut t.ws, T).await;
    });
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("webterm exits once empty");
    assert!(status.success(), "{status}");
}
