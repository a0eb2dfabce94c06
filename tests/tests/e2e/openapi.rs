//! The API's contract is served where operators and client generators look for it: the
//! internal listener, the same document as the one committed in docs/.

use handoff::services::{Service, ServiceSet};
use handoff_e2e::{Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_internal_listener_serves_the_committed_openapi_document() {
    let stack = Stack::start(StackOptions {
        services: ServiceSet::only(Service::Ingest),
        ..StackOptions::default()
    })
    .await;
    let client = reqwest::Client::new();

    let response = client
        .get(format!("{}/openapi.json", stack.internal()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let served = response.text().await.unwrap();
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json"),
    )
    .unwrap();
    assert_eq!(
        served, committed,
        "the served document is not docs/openapi.json"
    );

    let public = client
        .get(format!("{}/openapi.json", stack.api()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        public.status(),
        404,
        "the document is not on the public listener"
    );

    stack.stop().await.unwrap();
}
