//! Three authd processes on their own loopback ports, sharing one PostgreSQL database and one Redis
//! prefix, as behind a load balancer: every guarantee must hold across them.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use serde_json::json;
use uuid::Uuid;

use crate::processes::{
    assert_no_half_written_state, tokens, ClusterEnv, Node, NodeClient, Tokens,
};

fn email() -> String {
    format!("node-{}@example.com", Uuid::new_v4().simple())
}

/// Three nodes of one cluster (with these extra variables), a client, and an account signed up
/// on the first node: where the cross-node token tests start.
async fn three_nodes_and_an_account(
    extra: &[(&str, &str)],
) -> (ClusterEnv, Vec<Node>, NodeClient, Tokens) {
    let cluster = ClusterEnv::new(extra);
    let nodes = cluster.start_nodes(3);
    let client = NodeClient::new();
    let account = client.signup(&nodes[0], &email()).await;
    (cluster, nodes, client, account)
}

#[actix_web::test]
async fn a_rate_limit_is_global_across_three_nodes() {
    // 30 requests per hour per IP: no refill during the test.
    let cluster = ClusterEnv::new(&[
        ("AUTHD__RATE_LIMIT__GENERAL_MAX", "30"),
        ("AUTHD__RATE_LIMIT__GENERAL_WINDOW_SECONDS", "3600"),
    ]);
    let nodes = cluster.start_nodes(3);
    let client = NodeClient::new();
    let mut passed = 0;
    let mut limited = 0;
    for i in 0..90 {
        let node = &nodes[i % 3];
        let status = client
            .http
            .get(node.url("/me"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        match status {
            429 => limited += 1,
            401 => passed += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(passed, 30, "the limit counts across nodes, not per node");
    assert_eq!(limited, 60);
}

#[actix_web::test]
async fn a_token_rotated_on_one_node_is_replayed_within_grace_and_reuse_after_on_another() {
    let grace = [("AUTHD__TOKENS__REFRESH_REUSE_GRACE_SECONDS", "2")];
    let (_cluster, nodes, client, first) = three_nodes_and_an_account(&grace).await;

    let (status, body) = client.refresh(&nodes[0], &first.refresh).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let child = tokens(&body);

    // Within the grace window, another node answers the replay with the same child.
    let (status, body) = client.refresh(&nodes[1], &first.refresh).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(tokens(&body).refresh, child.refresh);

    // After it, the replay is reuse, wherever it lands, and the family is revoked everywhere.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, body) = client.refresh(&nodes[2], &first.refresh).await.unwrap();
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "refresh_token_reused");
    let (status, body) = client.refresh(&nodes[1], &child.refresh).await.unwrap();
    assert_eq!(status, 401, "{body}");
    for node in &nodes {
        assert_eq!(client.me(node, &child.access).await, 401, "{}", node.name);
    }
}

#[actix_web::test]
async fn logout_on_one_node_denies_the_access_token_on_the_others_at_once() {
    let (_cluster, nodes, client, account) = three_nodes_and_an_account(&[]).await;
    for node in &nodes {
        assert_eq!(client.me(node, &account.access).await, 200);
    }
    let response = client
        .http
        .post(nodes[0].url("/auth/logout"))
        .bearer_auth(&account.access)
        .json(&json!({ "refreshToken": account.refresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    // No waiting: the very next request on each other node is refused.
    for node in &nodes[1..] {
        assert_eq!(client.me(node, &account.access).await, 401, "{}", node.name);
    }
    let (status, _) = client.refresh(&nodes[2], &account.refresh).await.unwrap();
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn fifty_concurrent_refreshes_over_three_nodes_make_exactly_one_child() {
    let (cluster, nodes, client, account) = three_nodes_and_an_account(&[]).await;

    let answers = join_all((0..50).map(|i| client.refresh(&nodes[i % 3], &account.refresh))).await;
    let mut children = BTreeSet::new();
    for answer in answers {
        let (status, body) = answer.expect("an answer");
        assert!(status < 500, "{status} {body}");
        assert_eq!(status, 200, "{body}");
        children.insert(tokens(&body).refresh);
    }
    assert_eq!(children.len(), 1, "one child for one parent: {children:?}");

    let database = crate::helpers::postgres_client(&cluster.database.url()).await;
    let rows: i64 = database
        .query_one("SELECT count(*) FROM refresh_tokens", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 2, "the parent and its one child");
    assert_no_half_written_state(&cluster.database.url()).await;
    // The child works on every node.
    let child = children.into_iter().next().unwrap();
    let (status, _) = client.refresh(&nodes[1], &child).await.unwrap();
    assert_eq!(status, 200);
}
