//! A minimal HTTP/1.1 client connection for the load generator: one keep-alive TCP
//! connection, one request in flight, requests written from a reused buffer and answers
//! parsed just enough to read the status and skip the body (Content-Length or chunked).
//!
//! A general client (reqwest/hyper) costs more CPU per request than a durable ingest
//! should: on a 2-core machine it would take a third of the machine away from the hub it
//! measures. This one does the least a real partner's client must do: build, send, wait,
//! read the answer.

use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where to send: `http://host:port/path` (plain HTTP only: the bench talks to loopback).
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to connect to.
    pub addr: String,
    /// Value of the Host header.
    pub host: String,
    /// Request path.
    pub path: String,
}

impl Target {
    /// Parses an `http://` URL.
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("`{url}`: the bench speaks plain http:// only"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host.is_empty() {
            return Err(format!("`{url}`: no host"));
        }
        let addr = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        Ok(Target {
            addr,
            host: host.to_string(),
            path: path.to_string(),
        })
    }
}

/// One keep-alive connection.
pub struct Conn {
    stream: TcpStream,
    req: Vec<u8>,
    buf: Vec<u8>,
    /// Bytes of `buf` already received but not yet consumed.
    filled: usize,
    /// The server said it closes the connection after this answer.
    closing: bool,
}

impl Conn {
    /// Connects (TCP_NODELAY), giving up after 10 s.
    pub async fn connect(t: &Target) -> io::Result<Conn> {
        let stream = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            TcpStream::connect(&t.addr),
        )
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            req: Vec::with_capacity(1024),
            buf: vec![0; 8192],
            filled: 0,
            closing: false,
        })
    }

    /// Whether another request may be sent on this connection (the server did not
    /// announce that it closes it).
    pub fn reusable(&self) -> bool {
        !self.closing
    }

    /// Sends a POST with these extra headers and body; returns the response status once
    /// the whole response has been read.
    pub async fn post(
        &mut self,
        t: &Target,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<u16> {
        self.req.clear();
        self.req.extend_from_slice(b"POST ");
        self.req.extend_from_slice(t.path.as_bytes());
        self.req.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        self.req.extend_from_slice(t.host.as_bytes());
        self.req.extend_from_slice(b"\r\n");
        for (k, v) in headers {
            self.req.extend_from_slice(k.as_bytes());
            self.req.extend_from_slice(b": ");
            self.req.extend_from_slice(v.as_bytes());
            self.req.extend_from_slice(b"\r\n");
        }
        self.req.extend_from_slice(b"content-length: ");
        self.req
            .extend_from_slice(body.len().to_string().as_bytes());
        self.req.extend_from_slice(b"\r\n\r\n");
        self.req.extend_from_slice(body);
        self.stream.write_all(&self.req).await?;
        self.read_response().await
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.filled == self.buf.len() {
            if self.buf.len() >= 1 << 20 {
                return Err(bad("response head larger than 1 MiB"));
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.stream.read(&mut self.buf[self.filled..]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        self.filled += n;
        Ok(())
    }

    /// Drops the first `n` bytes of the buffer.
    fn consume(&mut self, n: usize) {
        self.buf.copy_within(n..self.filled, 0);
        self.filled -= n;
    }

    /// Reads until `marker` is in the buffer; returns where it starts.
    async fn until(&mut self, marker: &[u8]) -> io::Result<usize> {
        loop {
            if let Some(i) = find(&self.buf[..self.filled], marker) {
                return Ok(i);
            }
            self.fill().await?;
        }
    }

    async fn read_response(&mut self) -> io::Result<u16> {
        let head = loop {
            let head_len = self.until(b"\r\n\r\n").await? + 4;
            let head = parse_head(&self.buf[..head_len])?;
            self.consume(head_len);
            // Interim answers (100 Continue, 103 Early Hints) precede the real one.
            if !(100..200).contains(&head.status) {
                break head;
            }
        };
        self.closing = head.closing;
        match head.body {
            BodyLen::UntilClose => {
                self.closing = true;
                loop {
                    self.filled = 0;
                    match self.fill().await {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                        Err(e) => return Err(e),
                    }
                }
                self.filled = 0;
            }
            BodyLen::Fixed(n) => self.skip(n).await?,
            BodyLen::Chunked => loop {
                let line = self.until(b"\r\n").await?;
                let size = std::str::from_utf8(&self.buf[..line])
                    .ok()
                    .map(|s| s.split(';').next().unwrap_or("").trim())
                    .and_then(|s| usize::from_str_radix(s, 16).ok())
                    .ok_or_else(|| bad("bad chunk size"))?;
                self.consume(line + 2);
                // The chunk and its CRLF; the last chunk (0) is followed by CRLF only
                // (trailers are not used by the servers this talks to).
                let with_crlf = size.checked_add(2).ok_or_else(|| bad("bad chunk size"))?;
                self.skip(with_crlf).await?;
                if size == 0 {
                    break;
                }
            },
        }
        Ok(head.status)
    }

    async fn skip(&mut self, mut n: usize) -> io::Result<()> {
        loop {
            let take = n.min(self.filled);
            self.consume(take);
            n -= take;
            if n == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

enum BodyLen {
    Fixed(usize),
    Chunked,
    /// Neither length nor chunks: the body ends when the server closes.
    UntilClose,
}

struct Head {
    status: u16,
    body: BodyLen,
    /// `Connection: close`, or an HTTP/1.0 answer without keep-alive.
    closing: bool,
}

fn parse_head(head: &[u8]) -> io::Result<Head> {
    let text = std::str::from_utf8(head).map_err(|_| bad("response head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let (http10, rest) = match status_line.strip_prefix("HTTP/1.1 ") {
        Some(r) => (false, Some(r)),
        None => (true, status_line.strip_prefix("HTTP/1.0 ")),
    };
    let status = rest
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let (mut length, mut chunked, mut closing) = (None, false, http10);
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            length = Some(v.parse().map_err(|_| bad("bad content-length"))?);
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().contains("chunked");
        } else if k.eq_ignore_ascii_case("connection") {
            let v = v.to_ascii_lowercase();
            if v.contains("close") {
                closing = true;
            } else if v.contains("keep-alive") {
                closing = false;
            }
        }
    }
    // RFC 9112 §6.3: no body for 1xx, 204 and 304; chunked wins over a length; with
    // neither, the body runs to the close.
    let body = if (100..200).contains(&status) || status == 204 || status == 304 {
        BodyLen::Fixed(0)
    } else if chunked {
        BodyLen::Chunked
    } else {
        length.map_or(BodyLen::UntilClose, BodyLen::Fixed)
    };
    Ok(Head {
        status,
        body,
        closing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_parsed_from_urls() {
        let t = Target::parse("http://127.0.0.1:8080/v1/ingest/bench").expect("url");
        assert_eq!(t.addr, "127.0.0.1:8080");
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(t.path, "/v1/ingest/bench");
        let t = Target::parse("http://localhost").expect("url");
        assert_eq!((t.addr.as_str(), t.path.as_str()), ("localhost:80", "/"));
        assert!(Target::parse("https://x/").is_err());
    }

    #[test]
    fn heads_give_status_and_body_length() {
        let h = parse_head(b"HTTP/1.1 202 Accepted\r\nContent-Length: 12\r\n\r\n").expect("head");
        assert_eq!(h.status, 202);
        assert!(matches!(h.body, BodyLen::Fixed(12)));
        let h = parse_head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .expect("head");
        assert!(
            matches!(h.body, BodyLen::Chunked),
            "chunked wins over a length"
        );
        let h = parse_head(
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 2\r\n\r\n",
        )
        .expect("head");
        assert!(h.closing);
        let h = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").expect("head");
        assert!(h.closing && matches!(h.body, BodyLen::UntilClose));
        let h = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n").expect("head");
        assert!(!h.closing && matches!(h.body, BodyLen::Fixed(0)));
        assert!(parse_head(b"SPDY 200\r\n\r\n").is_err());
    }

    proptest::proptest! {
        /// Whatever a server answers, reading its head gives a status or an error, never
        /// a panic.
        #[test]
        fn any_response_head_is_read_or_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse_head(&bytes);
        }

        #[test]
        fn heads_with_any_header_lines_are_read(lines in proptest::collection::vec("[ -~]{0,40}", 0..8)) {
            let head = format!("HTTP/1.1 200 OK\r\n{}\r\n\r\n", lines.join("\r\n"));
            let _ = parse_head(head.as_bytes());
        }
    }

    /// Against a real axum server: several requests of different sizes on one connection.
    #[tokio::test]
    async fn a_connection_carries_many_requests_to_a_real_server() {
        use axum::routing::post;
        let app = axum::Router::new().route(
            "/fixed",
            post(|b: axum::body::Bytes| async move {
                (axum::http::StatusCode::ACCEPTED, format!("got {}", b.len()))
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        let fixed = Target::parse(&format!("http://{addr}/fixed")).expect("url");
        let mut c = Conn::connect(&fixed).await.expect("connect");
        for i in 0..50 {
            let body = vec![b'x'; i * 300];
            assert_eq!(
                c.post(&fixed, &[("x-n", "1")], &body).await.expect("post"),
                202
            );
        }
    }

    /// A raw server for one connection: `answer` is called with the stream after each
    /// request head has arrived, `requests` times.
    async fn raw_server<F, Fut>(requests: usize, answer: F) -> Target
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = tokio::net::TcpStream> + Send,
    {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            let mut buf = vec![0u8; 4096];
            for _ in 0..requests {
                let mut got = Vec::new();
                while find(&got, b"\r\n\r\n").is_none() {
                    let n = s.read(&mut buf).await.expect("read");
                    got.extend_from_slice(&buf[..n]);
                }
                s = answer(s).await;
            }
        });
        Target::parse(&format!("http://{addr}/")).expect("url")
    }

    /// An interim 100 answer is passed over; a body that runs to the close is read to it
    /// and the connection is then not reused.
    #[tokio::test]
    async fn interim_and_close_delimited_answers_are_read() {
        let t = raw_server(1, |mut s| async move {
            s.write_all(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\n\r\nbody until close",
            )
            .await
            .expect("write");
            s
        })
        .await;
        let mut c = Conn::connect(&t).await.expect("connect");
        assert_eq!(c.post(&t, &[], b"{}").await.expect("answer"), 202);
        assert!(!c.reusable());
    }

    /// A chunked answer split across reads, then a second answer on the same connection.
    #[tokio::test]
    async fn chunked_answers_are_read_to_their_end() {
        let t = raw_server(2, |mut s| async move {
            s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello ")
                .await
                .expect("write");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            s.write_all(b"\r\nA;x=1\r\n0123456789\r\n0\r\n\r\n")
                .await
                .expect("write");
            s
        })
        .await;
        let mut c = Conn::connect(&t).await.expect("connect");
        assert_eq!(c.post(&t, &[], b"{}").await.expect("first"), 200);
        assert_eq!(c.post(&t, &[], b"{}").await.expect("second"), 200);
        assert_eq!(c.filled, 0, "nothing of the answers is left over");
    }
}
