//! Fetch sessions (KIP-227): a consumer that fetches the same partitions over
//! and over names them once, in a full fetch that opens a session; later
//! incremental fetches name only the partitions whose fetch position or limits
//! changed (and those to forget), and their answers carry only the partitions
//! with news — records, an error, or a moved high watermark, last stable
//! offset or log start offset. With hundreds of partitions per consumer this
//! keeps both requests and idle answers small.
//!
//! The session id and epoch of a request decide what it is:
//! - epoch -1 (`FINAL_EPOCH`): a full fetch without a session; a session id
//!   names a session to close.
//! - epoch 0 (`INITIAL_EPOCH`): a full fetch that opens a new session (closing
//!   the one its id names). The answer's session id is 0 when no session could
//!   be kept (the cache is full), and the client keeps sending full fetches.
//! - any other epoch: an incremental fetch in session `id`, which must exist
//!   (else FETCH_SESSION_ID_NOT_FOUND), expect this epoch (else
//!   INVALID_FETCH_SESSION_EPOCH) and name topics the same way, by name or by
//!   id (else FETCH_SESSION_TOPIC_ID_ERROR).
//!
//! At most `max.incremental.fetch.session.cache.slots` sessions are kept; a
//! new one may take the place of the least recently used session idle for
//! [`EVICTABLE_AFTER`], else it is not kept. Partitions that returned records
//! move to the end of their session, so under the response byte limits the
//! others are read first next time.
//!
//! This module is the cache and its rules only; `handlers/fetch.rs` reads the
//! partitions. [`FetchSessions::open`] applies a request before the read and
//! [`FetchSessions::finish`] chooses what the answer carries after it.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use strom_protocol::ErrorCode;

/// Session id of a fetch without a session.
pub const NO_SESSION: i32 = 0;
/// Epoch of a full fetch that opens a session.
pub const INITIAL_EPOCH: i32 = 0;
/// Epoch of a full fetch without a session.
pub const FINAL_EPOCH: i32 = -1;
/// A session unused this long may be evicted to make room (Kafka's figure).
pub const EVICTABLE_AFTER: Duration = Duration::from_secs(120);

/// How a request names a topic: by name (Fetch v12 and older) or by id (v13+).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Name(String),
    Id([u8; 16]),
}

/// A partition to read and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchTarget {
    pub topic: TopicKey,
    pub partition: i32,
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
    pub current_leader_epoch: i32,
}

impl FetchTarget {
    fn same_partition(&self, topic: &TopicKey, partition: i32) -> bool {
        self.partition == partition && &self.topic == topic
    }
}

/// The figures of a partition's answer that an incremental answer repeats
/// only when they change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shown {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

/// What the read found for one partition.
#[derive(Clone, Copy, Debug)]
pub struct Answer {
    pub shown: Shown,
    pub error: bool,
    pub has_records: bool,
}

/// What a request is, from its session id and epoch (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// A full fetch answered with session id 0.
    Sessionless,
    /// A full fetch that opens a session when answered.
    Full,
    /// An incremental fetch in an open session.
    Incremental { id: i32 },
}

struct Cached {
    target: FetchTarget,
    /// What the last answer in this session showed (None: never answered).
    shown: Option<Shown>,
}

struct Session {
    /// The epoch the next incremental request must carry.
    next_epoch: i32,
    uses_topic_ids: bool,
    partitions: Vec<Cached>,
    last_used: Instant,
}

/// The broker's open fetch sessions.
pub struct FetchSessions {
    max_sessions: usize,
    sessions: HashMap<i32, Session>,
    /// Session ids are hashes of a counter: hard to guess, never 0.
    id_hasher: RandomState,
    counter: u64,
}

impl FetchSessions {
    /// A cache keeping at most `max_sessions` sessions (0: none).
    pub fn new(max_sessions: usize) -> FetchSessions {
        FetchSessions {
            max_sessions,
            sessions: HashMap::new(),
            id_hasher: RandomState::new(),
            counter: 0,
        }
    }

    /// Open sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Applies a request's session fields and partitions. Returns what the
    /// request is and the partitions to read (for an incremental fetch, all of
    /// its session's), or the request-level error to answer with.
    pub fn open(
        &mut self,
        session_id: i32,
        epoch: i32,
        uses_topic_ids: bool,
        requested: Vec<FetchTarget>,
        forgotten: &[(TopicKey, i32)],
        now: Instant,
    ) -> Result<(Context, Vec<FetchTarget>), ErrorCode> {
        if epoch == FINAL_EPOCH || epoch == INITIAL_EPOCH {
            if session_id != NO_SESSION {
                self.sessions.remove(&session_id);
            }
            let context = if epoch == FINAL_EPOCH {
                Context::Sessionless
            } else {
                Context::Full
            };
            return Ok((context, requested));
        }
        let session = self
            .sessions
            .get_mut(&session_id)
            .ok_or(ErrorCode::FetchSessionIdNotFound)?;
        if session.next_epoch != epoch {
            return Err(ErrorCode::InvalidFetchSessionEpoch);
        }
        if session.uses_topic_ids != uses_topic_ids {
            return Err(ErrorCode::FetchSessionTopicIdError);
        }
        for target in requested {
            let existing = session
                .partitions
                .iter_mut()
                .find(|c| c.target.same_partition(&target.topic, target.partition));
            match existing {
                Some(c) => c.target = target,
                None => session.partitions.push(Cached {
                    target,
                    shown: None,
                }),
            }
        }
        for (topic, partition) in forgotten {
            session
                .partitions
                .retain(|c| !c.target.same_partition(topic, *partition));
        }
        session.next_epoch = next_epoch(epoch);
        session.last_used = now;
        let targets = session
            .partitions
            .iter()
            .map(|c| c.target.clone())
            .collect();
        Ok((Context::Incremental { id: session_id }, targets))
    }

    /// After the read of `targets` (as `open` returned them) found `answers`:
    /// the session id to answer with and which partitions the answer carries.
    /// A full fetch opens its session here, an incremental one records what
    /// it showed.
    pub fn finish(
        &mut self,
        context: Context,
        uses_topic_ids: bool,
        targets: &[FetchTarget],
        answers: &[Answer],
        now: Instant,
    ) -> (i32, Vec<bool>) {
        let all = vec![true; targets.len()];
        match context {
            Context::Sessionless => (NO_SESSION, all),
            Context::Full => {
                if targets.is_empty() || !self.make_room(now) {
                    return (NO_SESSION, all);
                }
                let partitions = targets
                    .iter()
                    .zip(answers)
                    .map(|(t, a)| Cached {
                        target: t.clone(),
                        shown: Some(a.shown),
                    })
                    .collect();
                let id = self.new_id();
                self.sessions.insert(
                    id,
                    Session {
                        next_epoch: next_epoch(INITIAL_EPOCH),
                        uses_topic_ids,
                        partitions,
                        last_used: now,
                    },
                );
                (id, all)
            }
            Context::Incremental { id } => {
                let Some(session) = self.sessions.get_mut(&id) else {
                    // Closed meanwhile by another request: answer in full.
                    return (id, all);
                };
                let mut carried = Vec::with_capacity(targets.len());
                let mut returned_records = Vec::new();
                for (i, (target, answer)) in targets.iter().zip(answers).enumerate() {
                    let index = match session.partitions.get(i) {
                        Some(c) if c.target.same_partition(&target.topic, target.partition) => {
                            Some(i)
                        }
                        // The session changed since `open`: look the partition up.
                        _ => session
                            .partitions
                            .iter()
                            .position(|c| c.target.same_partition(&target.topic, target.partition)),
                    };
                    let Some(index) = index else {
                        carried.push(true);
                        continue;
                    };
                    let cached = &mut session.partitions[index];
                    let news =
                        answer.error || answer.has_records || cached.shown != Some(answer.shown);
                    cached.shown = Some(answer.shown);
                    carried.push(news);
                    if answer.has_records {
                        returned_records.push((target.topic.clone(), target.partition));
                    }
                }
                for (topic, partition) in returned_records {
                    if let Some(at) = session
                        .partitions
                        .iter()
                        .position(|c| c.target.same_partition(&topic, partition))
                    {
                        let moved = session.partitions.remove(at);
                        session.partitions.push(moved);
                    }
                }
                (id, carried)
            }
        }
    }

    /// True when a new session fits, evicting the least recently used one
    /// idle for [`EVICTABLE_AFTER`] if needed.
    fn make_room(&mut self, now: Instant) -> bool {
        if self.sessions.len() < self.max_sessions {
            return true;
        }
        let idlest = self
            .sessions
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_used) >= EVICTABLE_AFTER)
            .min_by_key(|(_, s)| s.last_used)
            .map(|(id, _)| *id);
        match idlest {
            Some(id) if self.max_sessions > 0 => {
                self.sessions.remove(&id);
                true
            }
            _ => false,
        }
    }

    fn new_id(&mut self) -> i32 {
        loop {
            self.counter += 1;
            // Positive and never NO_SESSION.
            let id = (self.id_hasher.hash_one(self.counter) as i32) & i32::MAX;
            if id != NO_SESSION && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }
}

/// The epoch after `epoch`, wrapping past i32::MAX to 1 (as Kafka does).
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(topic: &str, partition: i32, offset: i64) -> FetchTarget {
        FetchTarget {
            topic: TopicKey::Name(topic.into()),
            partition,
            fetch_offset: offset,
            partition_max_bytes: 1024,
            current_leader_epoch: -1,
        }
    }

    fn answer(hwm: i64, has_records: bool) -> Answer {
        Answer {
            shown: Shown {
                high_watermark: hwm,
                last_stable_offset: hwm,
                log_start_offset: 0,
            },
            error: false,
            has_records,
        }
    }

    /// A full fetch with epoch 0 of partitions 0..n of `t`, sent at `sent` and
    /// answered (hwm 10 each) at `answered`: the session id and what was carried.
    fn full_fetch(
        cache: &mut FetchSessions,
        n: i32,
        sent: Instant,
        answered: Instant,
    ) -> (i32, Vec<bool>) {
        let targets: Vec<_> = (0..n).map(|p| target("t", p, 0)).collect();
        let (ctx, read) = cache
            .open(NO_SESSION, INITIAL_EPOCH, false, targets, &[], sent)
            .unwrap();
        assert_eq!(ctx, Context::Full);
        let answers: Vec<_> = read.iter().map(|_| answer(10, false)).collect();
        cache.finish(ctx, false, &read, &answers, answered)
    }

    /// Opens a session over partitions 0..n of `t`.
    fn open_session(cache: &mut FetchSessions, n: i32, now: Instant) -> i32 {
        let (id, carried) = full_fetch(cache, n, now, now);
        assert_ne!(id, NO_SESSION);
        assert!(carried.iter().all(|c| *c));
        id
    }

    #[test]
    fn an_incremental_fetch_reads_the_whole_session_and_answers_only_news() {
        let mut cache = FetchSessions::new(10);
        let now = Instant::now();
        let id = open_session(&mut cache, 3, now);
        // Names only partition 1, at a new offset.
        let (ctx, read) = cache
            .open(id, 1, false, vec![target("t", 1, 5)], &[], now)
            .unwrap();
        assert_eq!(ctx, Context::Incremental { id });
        assert_eq!(
            read,
            vec![target("t", 0, 0), target("t", 1, 5), target("t", 2, 0)]
        );
        // Partition 0 unchanged, 1 returned records, 2's high watermark moved.
        let answers = [answer(10, false), answer(10, true), answer(11, false)];
        let (answered_id, carried) = cache.finish(ctx, false, &read, &answers, now);
        assert_eq!(answered_id, id);
        assert_eq!(carried, vec![false, true, true]);
        // Partition 1 returned records: it is read last next time.
        let (_, read) = cache.open(id, 2, false, Vec::new(), &[], now).unwrap();
        let order: Vec<i32> = read.iter().map(|t| t.partition).collect();
        assert_eq!(order, vec![0, 2, 1]);
    }

    #[test]
    fn forgotten_partitions_leave_and_new_ones_join_the_session() {
        let mut cache = FetchSessions::new(10);
        let now = Instant::now();
        let id = open_session(&mut cache, 2, now);
        let forgotten = [(TopicKey::Name("t".into()), 0)];
        let (ctx, read) = cache
            .open(id, 1, false, vec![target("u", 0, 7)], &forgotten, now)
            .unwrap();
        assert_eq!(read, vec![target("t", 1, 0), target("u", 0, 7)]);
        // A partition never answered in the session is always carried.
        let answers = [answer(10, false), answer(0, false)];
        let (_, carried) = cache.finish(ctx, false, &read, &answers, now);
        assert_eq!(carried, vec![false, true]);
    }

    #[test]
    fn unknown_sessions_wrong_epochs_and_mixed_topic_naming_are_refused() {
        let mut cache = FetchSessions::new(10);
        let now = Instant::now();
        let id = open_session(&mut cache, 1, now);
        let open = |cache: &mut FetchSessions, id, epoch, ids| {
            cache
                .open(id, epoch, ids, Vec::new(), &[], now)
                .map(|(ctx, _)| ctx)
        };
        assert_eq!(
            open(&mut cache, id.wrapping_add(1), 1, false),
            Err(ErrorCode::FetchSessionIdNotFound)
        );
        assert_eq!(
            open(&mut cache, id, 2, false),
            Err(ErrorCode::InvalidFetchSessionEpoch)
        );
        assert_eq!(
            open(&mut cache, id, 1, true),
            Err(ErrorCode::FetchSessionTopicIdError)
        );
        // Refused requests do not move the epoch.
        assert_eq!(
            open(&mut cache, id, 1, false),
            Ok(Context::Incremental { id })
        );
        assert_eq!(
            open(&mut cache, id, 1, false),
            Err(ErrorCode::InvalidFetchSessionEpoch)
        );
    }

    #[test]
    fn final_and_initial_epochs_close_the_named_session() {
        let mut cache = FetchSessions::new(10);
        let now = Instant::now();
        let id = open_session(&mut cache, 1, now);
        let (ctx, _) = cache
            .open(id, FINAL_EPOCH, false, Vec::new(), &[], now)
            .unwrap();
        assert_eq!(ctx, Context::Sessionless);
        assert!(cache.is_empty());
        let id = open_session(&mut cache, 1, now);
        let (ctx, _) = cache
            .open(id, INITIAL_EPOCH, false, vec![target("t", 0, 0)], &[], now)
            .unwrap();
        assert_eq!(ctx, Context::Full);
        assert!(cache.is_empty());
        assert_eq!(
            cache.open(id, 1, false, Vec::new(), &[], now).unwrap_err(),
            ErrorCode::FetchSessionIdNotFound
        );
    }

    #[test]
    fn a_full_cache_evicts_only_sessions_idle_long_enough() {
        let mut cache = FetchSessions::new(2);
        let start = Instant::now();
        let first = open_session(&mut cache, 1, start);
        let second = open_session(&mut cache, 1, start + Duration::from_secs(1));
        // Full, nobody idle long enough: answered without a session.
        let later = start + Duration::from_secs(2);
        assert_eq!(full_fetch(&mut cache, 1, start, later).0, NO_SESSION);
        // Once the oldest has been idle for EVICTABLE_AFTER, it makes room.
        let late = start + EVICTABLE_AFTER + Duration::from_millis(500);
        let third = open_session(&mut cache, 1, late);
        assert_eq!(cache.len(), 2);
        assert!(cache.open(first, 1, false, Vec::new(), &[], late).is_err());
        assert!(cache.open(second, 1, false, Vec::new(), &[], late).is_ok());
        assert!(cache.open(third, 1, false, Vec::new(), &[], late).is_ok());
    }

    #[test]
    fn no_session_is_kept_without_slots_or_partitions() {
        let now = Instant::now();
        let mut none = FetchSessions::new(0);
        assert_eq!(full_fetch(&mut none, 1, now, now).0, NO_SESSION);
        let mut cache = FetchSessions::new(5);
        assert_eq!(full_fetch(&mut cache, 0, now, now).0, NO_SESSION);
        assert!(cache.is_empty());
    }

    #[test]
    fn epochs_wrap_to_one() {
        assert_eq!(next_epoch(1), 2);
        assert_eq!(next_epoch(i32::MAX), 1);
    }
}
