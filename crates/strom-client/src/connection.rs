//! One TCP connection to one broker: ApiVersions negotiation, then pipelined
//! requests matched to responses by correlation id.
//!
//! A writer task owns the socket's write half and a reader task owns the read
//! half. A request registers its correlation id *before* its bytes are written,
//! so responses (which Kafka sends in request order) always find their waiter.
//! In-flight requests are bounded by a semaphore whose permit is released when the
//! response arrives, which is how `max.in.flight.requests.per.connection` holds.
//! The writer takes the permit before writing, so `dispatch` only queues: a
//! caller (the producer's sender) goes on batching while its earlier requests
//! wait for room, and requests still leave in the order they were dispatched.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use strom_protocol::header::{
    parse_response_header, request_header_version, response_header_version, RequestHeader,
};
use strom_protocol::messages::{
    ApiVersion, ApiVersionsRequest, DecodeLimits, KafkaDecode, KafkaEncode, RequestResponsePair,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, trace};

use crate::error::ClientError;
use crate::versions::client_max_version;

/// Largest response frame accepted by default (Kafka's consumer `fetch.max.bytes`
/// is 50 MiB; 100 MiB leaves room for overhead). Protects the client from
/// allocating whatever size a broken or hostile peer announces.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;
/// Requests queued for the writer task before `send` waits (backpressure).
const WRITE_QUEUE: usize = 64;

/// How a [`Connection`] behaves.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// `client.id` sent in every request header.
    pub client_id: String,
    /// Requests awaiting a response before `send` waits
    /// (`max.in.flight.requests.per.connection`, default 5).
    pub max_in_flight: usize,
    /// Largest response frame accepted; a larger one closes the connection.
    pub max_response_bytes: usize,
    /// `request.timeout.ms`: how long a response may take (default 30 000).
    pub request_timeout: Duration,
    /// How long establishing the TCP connection may take (`socket.connection.setup.timeout.ms`, 10 000).
    pub connect_timeout: Duration,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            client_id: "strom-client".into(),
            max_in_flight: 5,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Where a response (or, for acks=0 produce, the fact of being written) goes.
enum Reply {
    Response(oneshot::Sender<Result<Bytes, ClientError>>),
    Written(oneshot::Sender<Result<(), ClientError>>),
}

struct Outgoing {
    frame: Bytes,
    correlation_id: i32,
    header_version: i16,
    reply: Reply,
}

struct Pending {
    header_version: i16,
    reply: oneshot::Sender<Result<Bytes, ClientError>>,
    /// Held until the response arrives: bounds requests in flight.
    _permit: Option<OwnedSemaphorePermit>,
}

type PendingMap = Arc<Mutex<HashMap<i32, Pending>>>;

/// A negotiated, pipelined connection to one broker.
pub struct Connection {
    addr: String,
    config: ConnectionConfig,
    /// Broker's (min, max) version per API key, from ApiVersions.
    broker_versions: HashMap<i16, (i16, i16)>,
    next_correlation_id: AtomicI32,
    in_flight: Arc<Semaphore>,
    writer: mpsc::Sender<Outgoing>,
    closed: Arc<AtomicBool>,
}

/// A response that has been requested but not yet received.
pub struct PendingResponse<T> {
    addr: String,
    api_key: i16,
    version: i16,
    timeout: Duration,
    rx: oneshot::Receiver<Result<Bytes, ClientError>>,
    _marker: PhantomData<T>,
}

impl<T> PendingResponse<T> {
    /// Waits at most `timeout` for this response instead of `request.timeout.ms`
    /// (JoinGroup, which the coordinator may hold for a whole rebalance).
    pub fn with_timeout(mut self, timeout: Duration) -> PendingResponse<T> {
        self.timeout = timeout;
        self
    }
}

impl<T: KafkaDecode> PendingResponse<T> {
    /// Waits for the response (at most `request.timeout.ms`) and decodes it.
    pub async fn wait(self) -> Result<T, ClientError> {
        let timeout_ms = self.timeout.as_millis() as u64;
        let body = match tokio::time::timeout(self.timeout, self.rx).await {
            Err(_) => return Err(ClientError::RequestTimeout { timeout_ms }),
            Ok(Err(_)) => return Err(ClientError::ConnectionClosed { addr: self.addr }),
            Ok(Ok(result)) => result?,
        };
        T::decode_from_bytes(body, ApiVersion::new(self.version), DecodeLimits::default()).map_err(
            |e| ClientError::Decode(format!("api {} v{}: {e}", self.api_key, self.version)),
        )
    }
}

impl Connection {
    /// Connects to `addr` (`host:port`) and negotiates API versions.
    pub async fn connect(addr: &str, config: ConnectionConfig) -> Result<Connection, ClientError> {
        let stream =
            match tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(ClientError::unreachable(addr, &e)),
                Err(_) => {
                    return Err(ClientError::Unreachable {
                        addr: addr.into(),
                        reason: "connect timed out".into(),
                    })
                }
            };
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let pending: PendingMap = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
        tokio::spawn(write_loop(
            write,
            rx,
            in_flight.clone(),
            pending.clone(),
            closed.clone(),
            addr.to_string(),
        ));
        tokio::spawn(read_loop(
            read,
            pending,
            closed.clone(),
            addr.to_string(),
            config.max_response_bytes,
        ));
        let mut conn = Connection {
            addr: addr.to_string(),
            in_flight,
            config,
            broker_versions: HashMap::new(),
            next_correlation_id: AtomicI32::new(0),
            writer: tx,
            closed,
        };
        conn.negotiate().await?;
        debug!(addr = %conn.addr, apis = conn.broker_versions.len(), "connected");
        Ok(conn)
    }

    /// ApiVersions v3 (flexible, carries the client's software name, KIP-511).
    async fn negotiate(&mut self) -> Result<(), ClientError> {
        let mut req = ApiVersionsRequest::default();
        req.client_software_name = "strom-client".into();
        req.client_software_version = env!("CARGO_PKG_VERSION").into();
        let resp = self.send_at_version(&req, 3).await?;
        ClientError::check(resp.error_code, None)?;
        self.broker_versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// The broker address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the socket has closed; a closed connection fails every request.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The version used for `R`: the highest both this client and the broker speak.
    pub fn version_for<R: RequestResponsePair>(&self) -> Result<i16, ClientError> {
        self.version_at_most::<R>(i16::MAX)
    }

    /// Like [`version_for`](Self::version_for), but no higher than `max_version`:
    /// for callers whose protocol ends at an older version (the classic
    /// transaction protocol uses EndTxn ≤ v4 and Produce ≤ v11, KIP-890).
    pub fn version_at_most<R: RequestResponsePair>(
        &self,
        max_version: i16,
    ) -> Result<i16, ClientError> {
        let key = R::API_KEY.value();
        let unsupported = ClientError::UnsupportedVersion { api_key: key };
        let (broker_min, broker_max) =
            *self.broker_versions.get(&key).ok_or(unsupported.clone())?;
        let ours = R::SUPPORTED_VERSIONS;
        let max = broker_max
            .min(ours.max().value())
            .min(client_max_version(key).unwrap_or(i16::MAX))
            .min(max_version);
        let min = broker_min.max(ours.min().value());
        if max < min {
            return Err(unsupported);
        }
        Ok(max)
    }

    /// Sends `req` at the negotiated version and waits for its response.
    pub async fn send<R>(&self, req: &R) -> Result<R::Response, ClientError>
    where
        R: RequestResponsePair + KafkaEncode,
    {
        self.dispatch(req).await?.wait().await
    }

    /// Writes `req` (in call order) and returns a handle to await its response
    /// later: callers that must keep requests ordered dispatch sequentially and
    /// wait concurrently.
    pub async fn dispatch<R>(&self, req: &R) -> Result<PendingResponse<R::Response>, ClientError>
    where
        R: RequestResponsePair + KafkaEncode,
    {
        let version = self.version_for::<R>()?;
        self.dispatch_at_version(req, version).await
    }

    /// [`dispatch`](Self::dispatch) at [`version_at_most`](Self::version_at_most)`(max_version)`.
    pub async fn dispatch_at_most<R>(
        &self,
        req: &R,
        max_version: i16,
    ) -> Result<PendingResponse<R::Response>, ClientError>
    where
        R: RequestResponsePair + KafkaEncode,
    {
        let version = self.version_at_most::<R>(max_version)?;
        self.dispatch_at_version(req, version).await
    }

    async fn send_at_version<R>(&self, req: &R, version: i16) -> Result<R::Response, ClientError>
    where
        R: RequestResponsePair + KafkaEncode,
    {
        self.dispatch_at_version(req, version).await?.wait().await
    }

    async fn dispatch_at_version<R>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<PendingResponse<R::Response>, ClientError>
    where
        R: RequestResponsePair + KafkaEncode,
    {
        let api_key = R::API_KEY.value();
        let (frame, correlation_id) = self.encode(req, version)?;
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let (tx, rx) = oneshot::channel();
        trace!(addr = %self.addr, api_key, version, correlation_id, "request");
        let out = Outgoing {
            frame,
            correlation_id,
            header_version: response_header_version(api_key, version),
            reply: Reply::Response(tx),
        };
        self.writer
            .send(out)
            .await
            .map_err(|_| self.closed_error())?;
        Ok(PendingResponse {
            addr: self.addr.clone(),
            api_key,
            version,
            timeout: self.config.request_timeout,
            rx,
            _marker: PhantomData,
        })
    }

    /// Writes a request that gets no response (Produce with acks=0); resolves once written.
    pub async fn send_oneway<R>(&self, req: &R) -> Result<(), ClientError>
    where
        R: RequestResponsePair + KafkaEncode,
    {
        let version = self.version_for::<R>()?;
        let (frame, correlation_id) = self.encode(req, version)?;
        let (tx, rx) = oneshot::channel();
        let out = Outgoing {
            frame,
            correlation_id,
            header_version: 0,
            reply: Reply::Written(tx),
        };
        self.writer
            .send(out)
            .await
            .map_err(|_| self.closed_error())?;
        rx.await.map_err(|_| self.closed_error())?
    }

    fn encode<R: RequestResponsePair + KafkaEncode>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<(Bytes, i32), ClientError> {
        let api_key = R::API_KEY.value();
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let header = RequestHeader {
            api_key,
            api_version: version,
            correlation_id,
            client_id: Some(self.config.client_id.clone()),
            header_version: request_header_version(api_key, version),
        };
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        header.encode(&mut buf);
        req.encode_into(&mut buf, ApiVersion::new(version))
            .map_err(|e| ClientError::Encode(format!("{} v{version}: {e}", R::NAME)))?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        Ok((buf.freeze(), correlation_id))
    }

    fn closed_error(&self) -> ClientError {
        ClientError::ConnectionClosed {
            addr: self.addr.clone(),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Wakes requests blocked on the in-flight limit; the writer ends when
        // the channel closes and the reader when the socket does.
        self.in_flight.close();
    }
}

fn fail_all(pending: &PendingMap, addr: &str) {
    let drained: Vec<Pending> = pending.lock().unwrap().drain().map(|(_, p)| p).collect();
    for p in drained {
        let _ = p
            .reply
            .send(Err(ClientError::ConnectionClosed { addr: addr.into() }));
    }
}

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    in_flight: Arc<Semaphore>,
    pending: PendingMap,
    closed: Arc<AtomicBool>,
    addr: String,
) {
    while let Some(out) = rx.recv().await {
        if closed.load(Ordering::Acquire) {
            fail_reply(out.reply, &addr);
            continue;
        }
        let written_reply = match out.reply {
            Reply::Response(reply) => {
                // Closed when the connection is dropped.
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    fail_reply(Reply::Response(reply), &addr);
                    continue;
                };
                let entry = Pending {
                    header_version: out.header_version,
                    reply,
                    _permit: Some(permit),
                };
                pending.lock().unwrap().insert(out.correlation_id, entry);
                // The reader sets `closed` before failing waiters; an entry added
                // after that sweep is failed here instead of waiting for a timeout.
                if closed.load(Ordering::Acquire) {
                    fail_all(&pending, &addr);
                    continue;
                }
                None
            }
            Reply::Written(tx) => Some(tx),
        };
        let result = write.write_all(&out.frame).await;
        if let Err(e) = &result {
            debug!(%addr, error = %e, "write failed; closing connection");
            closed.store(true, Ordering::Release);
            let _ = write.shutdown().await;
            fail_all(&pending, &addr);
        }
        if let Some(tx) = written_reply {
            let _ =
                tx.send(result.map_err(|_| ClientError::ConnectionClosed { addr: addr.clone() }));
        }
    }
    let _ = write.shutdown().await;
}

fn fail_reply(reply: Reply, addr: &str) {
    let err = ClientError::ConnectionClosed { addr: addr.into() };
    match reply {
        Reply::Response(tx) => drop(tx.send(Err(err))),
        Reply::Written(tx) => drop(tx.send(Err(err))),
    }
}

async fn read_loop(
    mut read: OwnedReadHalf,
    pending: PendingMap,
    closed: Arc<AtomicBool>,
    addr: String,
    max_bytes: usize,
) {
    loop {
        match read_response(&mut read, &pending, &addr, max_bytes).await {
            Ok(()) => {}
            Err(e) => {
                debug!(%addr, error = %e, "connection closed");
                break;
            }
        }
    }
    closed.store(true, Ordering::Release);
    fail_all(&pending, &addr);
}

/// Reads one response frame and hands its body to the waiter.
async fn read_response(
    read: &mut OwnedReadHalf,
    pending: &PendingMap,
    addr: &str,
    max_bytes: usize,
) -> Result<(), ClientError> {
    let closed = || ClientError::ConnectionClosed { addr: addr.into() };
    let mut prefix = [0u8; 4];
    read.read_exact(&mut prefix).await.map_err(|_| closed())?;
    let size = i32::from_be_bytes(prefix);
    if size < 4 || size as usize > max_bytes {
        return Err(ClientError::FrameTooLarge {
            addr: addr.into(),
            bytes: size.max(0) as usize,
            limit: max_bytes,
        });
    }
    // Read into uninitialised capacity: zeroing megabytes of fetch data first
    // would cost as much as the CRC check.
    let size = size as usize;
    let mut frame = BytesMut::with_capacity(size);
    let mut body = (&mut *read).take(size as u64);
    while frame.len() < size {
        if body.read_buf(&mut frame).await.map_err(|_| closed())? == 0 {
            return Err(closed());
        }
    }
    let frame = frame.freeze();
    let correlation_id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    let entry = pending.lock().unwrap().remove(&correlation_id);
    let Some(entry) = entry else {
        return Err(ClientError::Decode(format!(
            "response with unknown correlation id {correlation_id}"
        )));
    };
    let body = parse_response_header(&frame, entry.header_version)
        .map(|(_, at)| frame.slice(at..))
        .map_err(|e| ClientError::Decode(e.to_string()));
    let _ = entry.reply.send(body);
    Ok(())
}
