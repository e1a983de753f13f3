//! `POST /graphql`, the one hot route, is handed to its handler before axum's router.
//!
//! Routing, with the middleware applied per route, cost a prepared read about a sixth of its
//! instructions (callgrind: 31,551 → 26,547 without it): the router looks the path up, inserts
//! the url parameters and the matched path into the request's extensions (a map allocated for
//! them), clones the route's boxed service, and boxes the response's body again after the
//! route's layers. `POST /graphql` needs none of it. Every other request (GET and WebSocket on
//! `/graphql` too) goes through the router as before, and the middleware wraps both.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use axum::Router;
use futures_util::future::Either;
use tower::Service;

use super::{graphql, HttpState};

type Handled = Pin<Box<dyn Future<Output = Response> + Send>>;

/// The router, with `POST /graphql` taken before it.
#[derive(Clone)]
pub struct GraphqlFirst {
    pub state: Arc<HttpState>,
    pub router: Router,
}

impl<B> Service<axum::http::Request<B>> for GraphqlFirst
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        futures_util::future::Map<Handled, fn(Response) -> Result<Response, Infallible>>,
        <Router as Service<axum::http::Request<B>>>::Future,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        <Router as Service<axum::http::Request<B>>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        use futures_util::FutureExt;
        if request.method() == Method::POST && request.uri().path() == "/graphql" {
            let request: Request = request.map(Body::new);
            let handled: Handled = Box::pin(graphql::post(State(self.state.clone()), request));
            Either::Left(handled.map(Ok as fn(Response) -> Result<Response, Infallible>))
        } else {
            Either::Right(self.router.call(request))
        }
    }
}
