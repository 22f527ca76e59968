//! Routes. Handlers live in [`super::handlers`]; this file only matches requests to them.
use std::convert::Infallible;
use std::sync::Arc;

use warp::{Filter, Reply};

use super::{handlers, AppState};

/// All routes, with rejections (unknown path, wrong method, ...) turned into replies.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    digest(state.clone())
        .or(timestamp(state.clone()))
        .or(tip(state.clone()))
        .or(index(state))
        .or(other_post())
        .recover(handlers::rejection)
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

fn with_state(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
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
    let query = warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify();
    // `/timestamp/` asks Python about the empty commitment (a 404 of the commitment kind), while
    // `/timestamp` is an unknown path there.
    let empty = warp::path!("timestamp")
        .and(warp::get())
        .and(warp::path::full())
        .and(query)
        .and(with_state(state.clone()))
        .map(
            |full: warp::path::FullPath, query, state| match full.as_str() {
                "/timestamp/" => handlers::get_timestamp(String::new(), query, state),
                _ => handlers::not_found(),
            },
        );
    warp::path!("timestamp" / String)
        .and(warp::get())
        .and(query)
        .and(with_state(state))
        .map(handlers::get_timestamp)
        .or(empty)
        .unify()
}

fn tip(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    warp::path!("tip")
        .and(warp::get())
        .and(with_state(state))
        .map(handlers::get_tip)
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
