//! An API Gateway (REST API, payload 1.0) proxy function for the WASI host, written as it
//! would be for AWS with `lambda_runtime` and `aws_lambda_events`. Run the host with
//! `RESPONSE_FORMAT=API_GATEWAY`. Routes:
//! - `GET /hello?name=Ada` → 200 text greeting
//! - `GET /status/{code}` → that status, with a header and a cookie
//! - `GET /binary` → a small PNG-like binary body (base64 in the proxy response)
//! - anything else → 200 JSON describing the request (method, path, `name` and every `tag`
//!   of the query, body)

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use http::{HeaderMap, HeaderValue};
use lambda_wasi::{Error, LambdaEvent};
use serde_json::json;

fn handler(event: LambdaEvent<ApiGatewayProxyRequest>) -> Result<ApiGatewayProxyResponse, Error> {
    let req = event.payload;
    let path = req.path.clone().unwrap_or_default();
    let mut headers = HeaderMap::new();
    let (status, body) = if path == "/hello" {
        let name = req.query_string_parameters.first("name").unwrap_or("world");
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        (200, Some(Body::Text(format!("Hello, {name}!"))))
    } else if let Some(code) = path.strip_prefix("/status/") {
        let code: i64 = code.parse().unwrap_or(400);
        headers.insert("x-status", HeaderValue::from_str(&code.to_string())?);
        headers.insert("set-cookie", HeaderValue::from_static("seen=yes; Path=/"));
        (code, Some(Body::Text(format!("status {code}"))))
    } else if path == "/binary" {
        headers.insert("content-type", HeaderValue::from_static("image/png"));
        (
            200,
            Some(Body::Binary(vec![0x89, b'P', b'N', b'G', 0, 1, 2, 255])),
        )
    } else {
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let description = json!({
            "method": req.http_method.as_str(),
            "path": path,
            "tags": req.multi_value_query_string_parameters.all("tag"),
            "name": req.query_string_parameters.first("name"),
            "body": req.body,
            "is_base64_encoded": req.is_base64_encoded,
            "request_id": event.context.request_id,
        });
        (200, Some(Body::Text(description.to_string())))
    };
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.headers = headers;
    response.body = body;
    response.is_base64_encoded = matches!(response.body, Some(Body::Binary(_)));
    Ok(response)
}

fn main() -> Result<(), Error> {
    lambda_wasi::run_sync(handler)
}
