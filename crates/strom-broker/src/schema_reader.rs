//! A bounded reader for the record layouts of Kafka's internal topics
//! (`__consumer_offsets`, `__transaction_state`): big-endian integers,
//! classic (int16/int32) or compact (unsigned varint) lengths, strings and
//! tagged fields. Every length is checked against the bytes left before it is
//! used, so a forged record cannot make a caller read past its end, loop or
//! allocate beyond it. Each codec maps [`ReadError`] into its own error type.

/// Why a record could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// Fewer bytes than the layout needs.
    Truncated,
    /// A length below -1.
    NegativeLength(i64),
    /// A string that is not UTF-8.
    InvalidUtf8,
    /// An unsigned varint longer than five bytes.
    MalformedVarint,
}

type Result<T> = std::result::Result<T, ReadError>;

/// Reads one record. `flexible` selects compact lengths and tagged fields
/// (the record's version decides it, so callers set it after the version).
pub(crate) struct SchemaReader<'a> {
    buf: &'a [u8],
    pub(crate) flexible: bool,
}

impl<'a> SchemaReader<'a> {
    pub(crate) fn new(buf: &'a [u8], flexible: bool) -> Self {
        Self { buf, flexible }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(ReadError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn i8(&mut self) -> Result<i8> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub(crate) fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// An unsigned varint of at most 32 bits (Kafka's `readUnsignedVarint`).
    pub(crate) fn uvarint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let [b] = self.array::<1>()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ReadError::MalformedVarint)
    }

    /// An array count or string/bytes length (int16 or, `wide`, int32
    /// classic; compact when flexible), `None` for null. `min_item_bytes`
    /// bounds the count by the bytes left.
    pub(crate) fn len(&mut self, wide: bool, min_item_bytes: usize) -> Result<Option<usize>> {
        let n: i64 = if self.flexible {
            self.uvarint()? as i64 - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(ReadError::NegativeLength(n)),
            n => {
                let n = usize::try_from(n).map_err(|_| ReadError::Truncated)?;
                if n.saturating_mul(min_item_bytes) > self.buf.len() {
                    return Err(ReadError::Truncated);
                }
                Ok(Some(n))
            }
        }
    }

    /// A nullable string (int16 length classic, compact flexible).
    pub(crate) fn nullable_string(&mut self) -> Result<Option<String>> {
        let Some(n) = self.len(false, 1)? else {
            return Ok(None);
        };
        std::str::from_utf8(self.take(n)?)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| ReadError::InvalidUtf8)
    }

    /// Nullable bytes (int32 length classic, compact flexible).
    pub(crate) fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>> {
        match self.len(true, 1)? {
            None => Ok(None),
            Some(n) => self.take(n).map(Some),
        }
    }

    /// Skips the tagged fields of a flexible structure (none in classic ones).
    pub(crate) fn skip_tagged_fields(&mut self) -> Result<()> {
        if self.flexible {
            for _ in 0..self.uvarint()? {
                let _tag = self.uvarint()?;
                let size = usize::try_from(self.uvarint()?).map_err(|_| ReadError::Truncated)?;
                self.take(size)?;
            }
        }
        Ok(())
    }
}
