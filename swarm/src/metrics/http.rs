//! The little of HTTP/1.1 the operations listener needs: the request line of a `GET`, and a
//! complete answer that closes the connection. Pure, so it is tested natively.

/// The largest request read (a scrape's request is a few hundred bytes).
pub const MAX_REQUEST: usize = 8 * 1024;

/// A request as this server understands it.
#[derive(Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `GET <path>` (the query string dropped).
    Get(&'a str),
    /// Another method.
    OtherMethod,
    /// Not an HTTP request line.
    Malformed,
}

/// Parses the request line of `head` (the bytes up to the blank line).
pub fn parse_request(head: &[u8]) -> Request<'_> {
    let line_end = head
        .windows(2)
        .position(|pair| pair == b"\r\n")
        .unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Request::Malformed;
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::Malformed;
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Request::Malformed;
    }
    if method != "GET" && method != "HEAD" {
        return Request::OtherMethod;
    }
    Request::Get(target.split('?').next().unwrap_or(target))
}

/// An answer: status line, content type, body.
pub fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\nCache-Control: no-store\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Get("/metrics")
        );
        assert_eq!(
            parse_request(b"GET /readyz?verbose=1 HTTP/1.0\r\n\r\n"),
            Request::Get("/readyz")
        );
        assert_eq!(
            parse_request(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Request::OtherMethod
        );
        assert_eq!(parse_request(b"GET /metrics\r\n\r\n"), Request::Malformed);
        assert_eq!(parse_request(b"\xff\xfe\r\n\r\n"), Request::Malformed);
        assert_eq!(
            parse_request(b"GET metrics HTTP/1.1\r\n\r\n"),
            Request::Malformed
        );
        assert_eq!(parse_request(b""), Request::Malformed);
    }

    #[test]
    fn responses_say_their_length() {
        let text = String::from_utf8(response("200 OK", "text/plain", "live\n")).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 5\r\n"));
        assert!(text.ends_with("\r\n\r\nlive\n"));
    }
}
