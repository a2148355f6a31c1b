//! The WAHA client against the WAHA double (a real HTTP server written from WAHA's published
//! document): what it sends, how it reads WAHA's answers, and how each kind of failure comes
//! back.

use herald_domain::poll::Poll;
use herald_engine_waha::{Operation, Secret, Unavailable, WahaClient, WahaConfig, WahaError};
use herald_testkit::waha::{Fault, Route, Tier, WahaDouble, WahaOptions};
use serde_json::{json, Value};
use std::time::Duration;

const KEY: &str = "waha-api-key-7f3a";
const HOOK_KEY: &str = "waha-hook-key-91c2";
const SESSION: &str = "01J9ZX8K2QHV0M3T6R7P4N5W8C";
const ME: &str = "11111111111@c.us";
const ALICE: &str = "22222222222@c.us";

/// Nothing listens on the discard port, so webhooks the double emits fail fast.
const NOWHERE: &str = "http://127.0.0.1:9";

async fn double(tier: Tier) -> WahaDouble {
    let double = WahaDouble::start_with(WahaOptions {
        api_key: Some(KEY.to_owned()),
        tier,
    })
    .await;
    // Its webhooks go nowhere here: let their retries give up at once.
    double.set_retry_second(Duration::ZERO);
    double
}

fn client_for(double: &WahaDouble, timeout: Duration) -> WahaClient {
    let config = WahaConfig::new(&double.url(), NOWHERE, Secret::new(HOOK_KEY))
        .unwrap()
        .with_api_key(Secret::new(KEY))
        .unwrap()
        .with_timeout(timeout)
        .unwrap();
    WahaClient::new(config)
}

fn client(double: &WahaDouble) -> WahaClient {
    client_for(double, Duration::from_secs(10))
}

fn herald_webhooks() -> Value {
    json!({"webhooks": [{
        "url": "http://127.0.0.1:9/api/v1/engines/waha/events",
        "events": ["session.status", "message", "message.any", "message.ack", "poll.vote", "poll.vote.failed"],
        "hmac": {"key": HOOK_KEY},
        "retries": {"policy": "exponential", "delaySeconds": 2, "attempts": 10},
    }]})
}

fn statuses(double: &WahaDouble) -> Vec<(Route, u16)> {
    double
        .calls()
        .iter()
        .map(|c| (c.route.unwrap(), c.status.unwrap()))
        .collect()
}

#[tokio::test]
async fn a_new_session_is_created_started_and_pointed_at_herald() {
    let double = double(Tier::Plus).await;
    let session = client(&double).ensure_session(SESSION).await.unwrap();
    assert_eq!(
        (session.name.as_str(), session.status.as_str()),
        (SESSION, "STARTING")
    );
    let calls = double.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].api_key(), Some(KEY));
    assert_eq!(
        calls[0].body,
        json!({"name": SESSION, "start": true, "config": herald_webhooks()})
    );
    assert_eq!(double.session(SESSION).unwrap().config, herald_webhooks());
}

#[tokio::test]
async fn an_existing_session_is_updated_and_started() {
    let double = double(Tier::Core).await;
    double.seed_session("default");
    let client = client(&double);
    let session = client.ensure_session("default").await.unwrap();
    assert_eq!(session.status, "STARTING");
    assert_eq!(
        statuses(&double),
        [
            (Route::CreateSession, 422),
            (Route::UpdateSession, 200),
            (Route::StartSession, 201)
        ]
    );
    assert_eq!(
        double.calls_to(Route::UpdateSession)[0].body,
        json!({"config": herald_webhooks()})
    );
    assert_eq!(double.session("default").unwrap().config, herald_webhooks());
    // Binding it again (a restart) is the same dance, and starting is idempotent.
    client.ensure_session("default").await.unwrap();
    assert!(double.calls().iter().all(|c| c.api_key() == Some(KEY)));
}

#[tokio::test]
async fn waha_cores_refusal_of_other_sessions_comes_back_as_is() {
    let double = double(Tier::Core).await;
    let error = client(&double).ensure_session("sales").await.unwrap_err();
    let WahaError::Rejected {
        operation,
        status,
        message,
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!((*operation, *status), (Operation::CreateSession, 422));
    assert!(
        message
            .as_deref()
            .unwrap()
            .contains("only 'default' session"),
        "{message:?}"
    );
    assert!(!error.is_unavailable());
    assert_eq!(
        statuses(&double),
        [(Route::CreateSession, 422), (Route::UpdateSession, 404)]
    );
}

#[tokio::test]
async fn deleting_is_done_even_when_waha_never_knew_the_session() {
    let double = double(Tier::Plus).await;
    let client = client(&double);
    client.ensure_session(SESSION).await.unwrap();
    client.delete_session(SESSION).await.unwrap();
    assert!(double.session(SESSION).is_none());
    client.delete_session(SESSION).await.unwrap();
    assert_eq!(
        double.calls_to(Route::DeleteSession).last().unwrap().status,
        Some(404)
    );
    double.set_fault(
        Route::DeleteSession,
        Fault::Error {
            status: 500,
            message: "disk full".into(),
        },
    );
    let error = client.delete_session(SESSION).await.unwrap_err();
    assert_eq!(
        (error.engine_status(), error.engine_message()),
        (Some(500), Some("disk full"))
    );
}

#[tokio::test]
async fn me_and_the_qr_code_follow_the_session() {
    let double = double(Tier::Plus).await;
    let client = client(&double);
    client.ensure_session(SESSION).await.unwrap();
    assert_eq!(client.me(SESSION).await.unwrap(), None);
    let early = client.qr(SESSION).await.unwrap_err();
    assert_eq!(early.engine_status(), Some(422));
    assert!(early.engine_message().unwrap().contains("SCAN_QR_CODE"));

    double.show_qr(SESSION, "2@AbCdEf==,xyz").await;
    assert_eq!(client.qr(SESSION).await.unwrap(), "2@AbCdEf==,xyz");
    let qr_call = double.calls_to(Route::Qr).pop().unwrap();
    assert_eq!(qr_call.query.as_deref(), Some("format=raw"));

    double.pair(SESSION, ME).await;
    let me = client.me(SESSION).await.unwrap().unwrap();
    assert_eq!(me.id, ME);
    assert_eq!(me.to_me().id, ME);
    let unknown = client.me("ghost").await.unwrap_err();
    assert_eq!(unknown.engine_status(), Some(404));
}

#[tokio::test]
async fn session_names_travel_percent_encoded() {
    let double = double(Tier::Plus).await;
    let client = client(&double);
    let odd = "sales team/é?";
    client.ensure_session(odd).await.unwrap();
    client.update_session(odd).await.unwrap();
    assert!(double.session(odd).is_some());
    assert_eq!(
        double.calls_to(Route::UpdateSession)[0].path,
        format!("/api/sessions/{odd}")
    );
    client.delete_session(odd).await.unwrap();
    assert!(double.session(odd).is_none());
}

async fn working() -> (WahaDouble, WahaClient) {
    let double = double(Tier::Plus).await;
    let client = client(&double);
    client.ensure_session(SESSION).await.unwrap();
    double.pair(SESSION, ME).await;
    (double, client)
}

#[tokio::test]
async fn sends_return_wahas_message_ids() {
    let (double, client) = working().await;
    let id = client
        .send_text(
            SESSION,
            ALICE,
            "hello",
            Some("false_22222222222@c.us_QUOTED"),
        )
        .await
        .unwrap();
    assert!(id.starts_with(&format!("true_{ALICE}_")), "{id}");
    assert_eq!(
        double.calls_to(Route::SendText)[0].body,
        json!({"session": SESSION, "chatId": ALICE, "text": "hello", "reply_to": "false_22222222222@c.us_QUOTED"})
    );
    client
        .send_text(SESSION, ALICE, "plain", None)
        .await
        .unwrap();
    assert!(double.calls_to(Route::SendText)[1]
        .body
        .get("reply_to")
        .is_none());

    let single = Poll::new("Lunch?".into(), vec!["Pizza".into(), "Sushi".into()], 1).unwrap();
    let poll_id = client.send_poll(SESSION, ALICE, &single).await.unwrap();
    assert!(poll_id.starts_with("true_"), "{poll_id}");
    let any = Poll::new("Sides?".into(), vec!["Fries".into(), "Salad".into()], 0).unwrap();
    client.send_poll(SESSION, ALICE, &any).await.unwrap();
    let polls = double.calls_to(Route::SendPoll);
    assert_eq!(
        polls[0].body,
        json!({"session": SESSION, "chatId": ALICE, "poll": {"name": "Lunch?", "options": ["Pizza", "Sushi"], "multipleAnswers": false}})
    );
    assert_eq!(polls[1].body["poll"]["multipleAnswers"], true);

    let vote = client
        .send_poll_vote(SESSION, ALICE, &poll_id, &["Sushi".to_owned()])
        .await
        .unwrap();
    assert_eq!(vote, None, "WAHA's document promises no body");
    assert_eq!(
        double.calls_to(Route::SendPollVote)[0].body,
        json!({"session": SESSION, "chatId": ALICE, "pollMessageId": poll_id, "votes": ["Sushi"]})
    );
    double.set_fault(
        Route::SendPollVote,
        Fault::Raw {
            status: 201,
            body: r#"{"id":"true_x_VOTE"}"#.into(),
        },
    );
    let named = client
        .send_poll_vote(SESSION, ALICE, &poll_id, &[])
        .await
        .unwrap();
    assert_eq!(named.as_deref(), Some("true_x_VOTE"));
}

#[tokio::test]
async fn every_engines_answer_shape_gives_the_id_and_an_unusable_answer_is_an_error() {
    let (double, client) = working().await;
    let shapes = [
        (
            r#"{"id":{"fromMe":true,"remote":"2@c.us","id":"AAA","_serialized":"true_2@c.us_AAA"}}"#,
            "true_2@c.us_AAA",
        ),
        (
            r#"{"key":{"remoteJid":"2@s.whatsapp.net","fromMe":true,"id":"3EB0"},"status":"PENDING"}"#,
            "true_2@c.us_3EB0",
        ),
    ];
    for (body, expected) in shapes {
        double.set_fault(
            Route::SendText,
            Fault::Raw {
                status: 201,
                body: body.into(),
            },
        );
        assert_eq!(
            client.send_text(SESSION, ALICE, "x", None).await.unwrap(),
            expected
        );
    }
    for body in ["", "not json", "{}", r#"{"id":""}"#] {
        double.set_fault(
            Route::SendText,
            Fault::Raw {
                status: 201,
                body: body.into(),
            },
        );
        let error = client
            .send_text(SESSION, ALICE, "x", None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                WahaError::InvalidAnswer {
                    operation: Operation::SendText,
                    ..
                }
            ),
            "{body}: {error:?}"
        );
        assert_eq!(
            (error.is_unavailable(), error.outcome()),
            (false, "invalid_answer")
        );
    }
}

#[tokio::test]
async fn wahas_refusals_keep_their_status_and_message() {
    let (double, client) = working().await;
    double.set_status(SESSION, "STOPPED").await;
    let stopped = client
        .send_text(SESSION, ALICE, "x", None)
        .await
        .unwrap_err();
    assert_eq!(stopped.engine_status(), Some(422));
    assert!(stopped
        .engine_message()
        .unwrap()
        .starts_with("Session status is not as expected"));
    double.set_fault(
        Route::SendPoll,
        Fault::Error {
            status: 500,
            message: "The method is not implemented by the engine.".into(),
        },
    );
    let poll = Poll::new("Q".into(), vec!["a".into(), "b".into()], 1).unwrap();
    let error = client.send_poll(SESSION, ALICE, &poll).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "WAHA refused send_poll with status 500: The method is not implemented by the engine."
    );
    double.set_fault(
        Route::SendPoll,
        Fault::Raw {
            status: 503,
            body: "<html>maintenance</html>".into(),
        },
    );
    let bare = client.send_poll(SESSION, ALICE, &poll).await.unwrap_err();
    assert_eq!(
        (bare.engine_status(), bare.engine_message()),
        (Some(503), None)
    );

    let wrong_key = WahaClient::new(
        WahaConfig::new(&double.url(), NOWHERE, Secret::new(HOOK_KEY))
            .unwrap()
            .with_api_key(Secret::new("not-the-key"))
            .unwrap(),
    );
    assert_eq!(
        wrong_key.me(SESSION).await.unwrap_err().engine_status(),
        Some(401)
    );
    let no_key =
        WahaClient::new(WahaConfig::new(&double.url(), NOWHERE, Secret::new(HOOK_KEY)).unwrap());
    assert_eq!(
        no_key.me(SESSION).await.unwrap_err().engine_status(),
        Some(401)
    );
    assert_eq!(double.calls().last().unwrap().api_key(), None);
}

#[tokio::test]
async fn a_slow_closed_or_absent_waha_is_unavailable() {
    let (double, _) = working().await;
    let client = client_for(&double, Duration::from_millis(150));

    double.set_fault(Route::SendText, Fault::Delay(Duration::from_secs(30)));
    let slow = client
        .send_text(SESSION, ALICE, "x", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&slow, WahaError::Unavailable { operation: Operation::SendText, reason: Unavailable::TimedOut(t) } if *t == Duration::from_millis(150)),
        "{slow:?}"
    );
    assert!(slow.is_unavailable());
    assert_eq!(slow.engine_status(), None);

    double.set_fault(Route::SendText, Fault::Hangup);
    let closed = client
        .send_text(SESSION, ALICE, "x", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &closed,
            WahaError::Unavailable {
                reason: Unavailable::Unreachable(_),
                ..
            }
        ),
        "{closed:?}"
    );
    double.clear_fault(Route::SendText);

    double.go_down().await;
    let refused = client.me(SESSION).await.unwrap_err();
    let WahaError::Unavailable {
        reason: Unavailable::Unreachable(why),
        ..
    } = &refused
    else {
        panic!("{refused:?}")
    };
    assert!(why.to_lowercase().contains("refused"), "{why}");
    double.come_up().await;
    assert!(client.me(SESSION).await.unwrap().is_some());
}

#[tokio::test]
async fn keys_never_show_in_errors_or_debug_output() {
    let (double, client) = working().await;
    let mut errors = Vec::new();
    double.set_fault(
        Route::SendText,
        Fault::Error {
            status: 400,
            message: "bad".into(),
        },
    );
    errors.push(
        client
            .send_text(SESSION, ALICE, "x", None)
            .await
            .unwrap_err(),
    );
    double.go_down().await;
    errors.push(
        client
            .send_text(SESSION, ALICE, "x", None)
            .await
            .unwrap_err(),
    );
    errors.push(client.ensure_session(SESSION).await.unwrap_err());
    let mut shown: Vec<String> = errors
        .iter()
        .flat_map(|e| [e.to_string(), format!("{e:?}")])
        .collect();
    shown.push(format!("{client:?}"));
    shown.push(format!("{:?}", client.config()));
    for text in shown {
        assert!(!text.contains(KEY) && !text.contains(HOOK_KEY), "{text}");
    }
}
