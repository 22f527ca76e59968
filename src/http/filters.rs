//! Routes. Handlers live in [`super::handlers`]; this file only matches requests to them.
use std::convert::Infallible;
use std::sync::Arc;

use warp::{Filter, Reply};

use super::{handlers, AppState};

/// All routes, with rejections (unknown path, wrong method, ...) turned into replies.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let metrics = state.ops.metrics.clone();
    digest(state.clone())
        .or(get_digest())
        .or(timestamp(state.clone()))
        .or(tip(state.clone()))
        .or(backup(state.clone()))
        .or(health(state.clone()))
        .or(status(state.clone()))
        .or(api_metrics(state.clone()))
        .or(log_feed(state.clone()))
        .or(index(state))
        .or(other_post())
        .recover(handlers::rejection)
        .with(warp::log::custom(move |info| {
            metrics.http_response(info.status().as_u16())
        }))
}

/// The routes of the separate `--metrics-address` listener: `/metrics`, `/healthz`, `/readyz`.
pub fn ops_routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    metrics_route(state.clone())
        .or(health(state))
        .recover(handlers::rejection)
}

/// `/metrics` on the API address, unless it has an address of its own.
fn api_metrics(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    let on_api = state.ops.metrics_on_api;
    warp::any()
        .and_then(move || async move {
            if on_api {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .and(metrics_route(state))
}

fn metrics_route(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    warp::path!("metrics")
        .and(warp::get())
        .and(with_state(state))
        .map(handlers::get_metrics)
}

fn health(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    let live = warp::path!("healthz").map(|| false);
    let ready = warp::path!("readyz").map(|| true);
    live.or(ready)
        .unify()
        .and(warp::get())
        .and(with_state(state))
        .map(handlers::get_health)
}

fn status(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    warp::path!("status" / String)
        .and(warp::get())
        .and(with_state(state))
        .map(handlers::get_status)
}

/// Any POST but `/digest`: the Python server's lower-case `not found`.
fn other_post() -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    // Not `warp::post()`: its method rejection would turn every unknown GET path into a 405.
    warp::method().and_then(|method: warp::http::Method| async move {
        match method {
            warp::http::Method::POST => Ok(handlers::post_not_found()),
            _ => Err(warp::reject::not_found()),
        }
    })
}

/// `GET /digest`: an unknown path to the Python server (its `do_GET` has no such route), so the
/// same `404`, not a `405`.
fn get_digest() -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    warp::path!("digest")
        .and(warp::get())
        .map(handlers::not_found)
}

fn with_state(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The raw query string, if the request has one.
fn raw_query() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
}

fn digest(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    warp::path!("digest")
        .and(warp::post())
        .and(warp::header::optional::<String>("content-length"))
        .and(warp::body::stream())
        .and(with_state(state))
        .then(handlers::post_digest)
}

fn timestamp(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    // Python reads the commitment from the raw path, query string included, so any query makes
    // it invalid hex there: keep the query to answer the same.
    // `/timestamp/` asks Python about the empty commitment (a 404 of the commitment kind), while
    // `/timestamp` is an unknown path there.
    let empty = warp::path!("timestamp")
        .and(warp::get())
        .and(warp::path::full())
        .and(raw_query())
        .and(with_state(state.clone()))
        .map(
            |full: warp::path::FullPath, query, state| match full.as_str() {
                "/timestamp/" => handlers::get_timestamp(String::new(), query, state),
                _ => handlers::not_found(),
            },
        );
    warp::path!("timestamp" / String)
        .and(warp::get())
        .and(raw_query())
        .and(with_state(state))
        .map(handlers::get_timestamp)
        .or(empty)
        .unify()
}

fn log_feed(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    warp::path!("log" / String)
        .and(warp::get())
        .and(warp::header::optional::<String>("range"))
        .and(with_state(state))
        .then(super::log_feed::get_log)
}

fn tip(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    warp::path!("tip")
        .and(warp::get())
        .and(with_state(state))
        .map(handlers::get_tip)
}

/// `/experimental/backup/<N>`: everything after the prefix, query included, is Python's `N`.
fn backup(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    let query = raw_query();
    warp::path("experimental")
        .and(warp::path("backup"))
        .and(warp::path::tail())
        .and(query)
        .and(warp::get())
        .map(
            |tail: warp::path::Tail, query: Option<String>| match query {
                Some(q) => format!("{}?{q}", tail.as_str()),
                None => tail.as_str().to_owned(),
            },
        )
        .and(with_state(state))
        .then(super::backup::get_backup)
}

fn index(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    warp::path::end()
        .and(warp::get())
        .and(warp::header::optional::<String>("accept"))
        .and(with_state(state))
        .map(handlers::get_index)
}
