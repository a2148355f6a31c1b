//! The served OpenAPI document is exact, route by route, on both stores: every route of the
//! route table is documented and every documented operation is served; and for every route the
//! answers a client gets are the documented ones — checked against the status list, content
//! type, body schema and required headers of the document the server serves:
//!
//! - a method the path does not serve → 405 with `Allow` naming exactly the served methods;
//! - public routes → their success answer;
//! - authenticated routes without a token → 401;
//! - routes with path parameters, with ids that name nothing → 404;
//! - routes with a body, given one that is not a JSON object → 422, and one over 1 MiB → 413;
//! - every query parameter the document constrains, given a value outside its schema (or left
//!   out when required) → 422.
//!
//! Successful answers of every authenticated route are checked by the isolation test, which
//! calls each route with working fixtures and checks each answer against the same document.
//! All of this is generated from the route table and the document: a new route is covered
//! without editing this file.

use herald_http::routes::{Access, Route, ROUTES};
use herald_testkit::openapi::Conformance;
use herald_testkit::{per_backend, Backend, Reply, TestServer};
use serde_json::Value;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn name(route: &Route) -> String {
    format!("{} {}", route.method, route.path)
}

/// The route's path with every parameter replaced by `value`.
fn concrete(route: &Route, value: &str) -> String {
    route
        .path
        .split('/')
        .map(|s| if s.starts_with('{') { value } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_route_is_documented_and_every_documented_operation_is_served() {
    let doc = herald_http::openapi::document();
    for route in ROUTES {
        assert!(
            doc["paths"][route.path][route.method.as_str().to_ascii_lowercase()].is_object(),
            "{} is served but not documented",
            name(route)
        );
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            assert!(
                ROUTES
                    .iter()
                    .any(|r| r.path == path && r.method.as_str().eq_ignore_ascii_case(method)),
                "{method} {path} is documented but not served"
            );
        }
    }
}

/// A value the parameter's schema refuses, if the schema constrains it.
fn outside(schema: &Value) -> Option<String> {
    if let Some(first) = schema.get("anyOf").and_then(|a| a.get(0)) {
        // An integer that may also be left empty.
        return outside(first);
    }
    if schema.get("enum").is_some() || schema.get("pattern").is_some() {
        return Some("~not-allowed~".to_owned());
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_i64) {
        return Some((max + 1).to_string());
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_i64) {
        return Some((min - 1).to_string());
    }
    if schema["type"] == "integer" {
        return Some("x".to_owned());
    }
    None
}

async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> Reply {
    server.client.send_raw(method, path, token, body, &[]).await
}

async fn answers_are_the_documented_ones(backend: Backend) {
    let server = TestServer::start(backend).await;
    let token = server
        .api_key("org_openapi", "read,send,manage,ingest")
        .await;
    let conformance = Conformance::fetch(&server.client).await;
    let error_schema = Conformance::new(serde_json::json!({
        "components": conformance.document()["components"].clone(),
        "paths": {"/any": {"get": {"responses": {"405": {"description": "",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}}}
    }));

    for route in ROUTES {
        let name = name(route);
        let method = route.method.as_str();
        let check = |reply: &Reply| conformance.assert(method, route.path, reply);
        let path = concrete(route, "nothing");

        // Another method: 405 with exactly the served methods in `Allow`.
        let served: Vec<&str> = ROUTES
            .iter()
            .filter(|r| r.path == route.path)
            .map(|r| r.method.as_str())
            .collect();
        let other = METHODS
            .iter()
            .find(|m| !served.contains(m))
            .expect("some method is not served");
        let reply = send(&server, other, &path, Some(&token), None).await;
        assert_eq!(reply.status, 405, "{other} on {name}");
        let mut allowed: Vec<&str> = reply
            .headers
            .get("allow")
            .unwrap_or_else(|| panic!("{other} on {name}: 405 without Allow"))
            .to_str()
            .unwrap()
            .split(',')
            .map(str::trim)
            .collect();
        allowed.sort_unstable();
        let mut expected = served.clone();
        expected.sort_unstable();
        assert_eq!(allowed, expected, "{other} on {name}: Allow");
        error_schema.assert("GET", "/any", &reply);

        if route.op == herald_http::routes::Op::WahaEvents {
            // Served only when the engine is WAHA (this server runs the simulator): 404. Its
            // answers with WAHA are checked by the WAHA engine's tests.
            let reply = send(&server, method, &path, None, Some(b"{}".to_vec())).await;
            assert_eq!(reply.status, 404, "{name} without the WAHA engine");
            check(&reply);
            continue;
        }
        if route.access == Access::Public {
            // A public route with a path parameter serves files: ask for one that exists.
            let path = concrete(route, "main.js");
            let reply = send(&server, method, &path, None, None).await;
            assert_eq!(reply.status, route.success, "{name}");
            check(&reply);
            continue;
        }

        let reply = send(&server, method, &path, None, None).await;
        assert_eq!(reply.status, 401, "{name} without a token");
        check(&reply);

        let op = conformance
            .operation(method, route.path)
            .unwrap_or_else(|| panic!("{name} is not documented"));
        if route.path.contains('{') {
            let body = op.get("requestBody").map(|_| b"{}".to_vec());
            let reply = send(&server, method, &path, Some(&token), body).await;
            assert!(
                matches!(reply.status, 404 | 422),
                "{name} naming nothing: {} {:?}",
                reply.status,
                reply.json
            );
            check(&reply);
        }
        if op.get("requestBody").is_some() {
            let reply = send(
                &server,
                method,
                &path,
                Some(&token),
                Some(b"[1, 2]".to_vec()),
            )
            .await;
            assert_eq!(reply.status, 422, "{name} with a non-object body");
            check(&reply);
            let huge = vec![b' '; herald_http::body::MAX_BODY + 1];
            let reply = send(&server, method, &path, Some(&token), Some(huge)).await;
            assert_eq!(reply.status, 413, "{name} with a body over the limit");
            check(&reply);
        }
        let parameters = op["parameters"].as_array().cloned().unwrap_or_default();
        let query: Vec<&Value> = parameters.iter().filter(|p| p["in"] == "query").collect();
        let valid: Vec<String> = query
            .iter()
            .filter(|p| p["required"] == true)
            .map(|p| format!("{}=value", p["name"].as_str().unwrap()))
            .collect();
        for parameter in &query {
            let param = parameter["name"].as_str().unwrap();
            let others: Vec<&String> = valid
                .iter()
                .filter(|v| !v.starts_with(&format!("{param}=")))
                .collect();
            let mut cases = Vec::new();
            if parameter["required"] == true {
                cases.push(
                    others
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join("&"),
                );
            }
            if let Some(bad) = outside(&parameter["schema"]) {
                let mut pairs: Vec<String> = others.iter().map(|s| s.to_string()).collect();
                pairs.push(format!("{param}={bad}"));
                cases.push(pairs.join("&"));
            }
            for case in cases {
                let url = format!("{path}?{case}");
                let reply = send(&server, method, &url, Some(&token), None).await;
                assert_eq!(reply.status, 422, "{name} with `{case}`: {:?}", reply.json);
                assert_eq!(
                    reply.json["error"]["details"]["field"], param,
                    "{name} with `{case}` names the parameter"
                );
                check(&reply);
            }
        }
    }
}

per_backend!(answers_are_the_documented_ones);
