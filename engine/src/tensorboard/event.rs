//! TensorBoard's event file format, both ways: a file is a sequence of TFRecord records
//! (length, masked CRC-32C of the length, payload, masked CRC-32C of the payload), each
//! payload a protobuf `tensorflow.Event`. Only the fields a run log uses are encoded, with
//! their numbers from TensorFlow's `event.proto` and `summary.proto`:
//!
//! ```text
//! Event      { double wall_time = 1; int64 step = 2; oneof what { string file_version = 3;
//!              Summary summary = 5; SessionLog session_log = 7; } }
//! Summary    { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
//! SessionLog { SessionStatus status = 1; }   (START = 1)
//! ```
//!
//! The format is small and fixed, so it is written here rather than through a crate: the
//! crates that write it pull in a protobuf compiler at build time (`tboard`), or an HTTP and
//! TLS stack and about 75 packages (`tfrecord`), for these few fields (docs/architecture.md).
//! The reader skips fields it does not know, as protobuf readers do, and is what the tests
//! read the files back with.

/// One event of a run's file.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    pub step: i64,
    pub what: What,
}

#[derive(Clone, Debug, PartialEq)]
pub enum What {
    /// The file's first event: `brain.Event:2`.
    FileVersion(String),
    /// A session start: TensorBoard drops what earlier files logged from this event's step on.
    SessionStart,
    /// Scalars `(tag, value)`.
    Scalars(Vec<(String, f32)>),
    /// An event this reader does not interpret (another `what`, or none).
    Other,
}

/// `event` as one framed record, ready to append to a file.
pub fn record(event: &Event) -> Vec<u8> {
    let payload = encode(event);
    let length = (payload.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc(&length).to_le_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&masked_crc(&payload).to_le_bytes());
    out
}

/// Every event of a file's bytes, each record's two CRCs checked; the error names the record.
pub fn read(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let mut events = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let n = events.len();
        let field = |from: usize, len: usize| {
            bytes
                .get(from..from + len)
                .ok_or_else(|| format!("record {n} is cut short at byte {from}"))
        };
        let length = field(at, 8)?;
        let stored = u32::from_le_bytes(field(at + 8, 4)?.try_into().expect("4 bytes"));
        if stored != masked_crc(length) {
            return Err(format!("record {n}: the length's CRC does not match"));
        }
        let len = usize::try_from(u64::from_le_bytes(length.try_into().expect("8 bytes")))
            .map_err(|_| format!("record {n}: a length beyond memory"))?;
        let payload = field(at + 12, len)?;
        let stored = u32::from_le_bytes(field(at + 12 + len, 4)?.try_into().expect("4 bytes"));
        if stored != masked_crc(payload) {
            return Err(format!("record {n}: the payload's CRC does not match"));
        }
        events.push(decode(payload).map_err(|e| format!("record {n}: {e}"))?);
        at += 16 + len;
    }
    Ok(events)
}

fn encode(event: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    out.push(tag(1, FIXED64));
    out.extend_from_slice(&event.wall_time.to_le_bytes());
    out.push(tag(2, VARINT));
    varint(&mut out, event.step as u64);
    match &event.what {
        What::FileVersion(version) => bytes_field(&mut out, 3, version.as_bytes()),
        What::SessionStart => bytes_field(&mut out, 7, &[tag(1, VARINT), SESSION_START]),
        What::Scalars(values) => {
            let mut summary = Vec::new();
            for (name, value) in values {
                let mut entry = Vec::new();
                bytes_field(&mut entry, 1, name.as_bytes());
                entry.push(tag(2, FIXED32));
                entry.extend_from_slice(&value.to_le_bytes());
                bytes_field(&mut summary, 1, &entry);
            }
            bytes_field(&mut out, 5, &summary);
        }
        What::Other => {}
    }
    out
}

fn decode(payload: &[u8]) -> Result<Event, String> {
    let mut event = Event {
        wall_time: 0.0,
        step: 0,
        what: What::Other,
    };
    for field in Fields(payload) {
        match field? {
            (1, Value::Fixed64(bits)) => event.wall_time = f64::from_bits(bits),
            (2, Value::Varint(step)) => event.step = step as i64,
            (3, Value::Bytes(version)) => {
                event.what = What::FileVersion(String::from_utf8_lossy(version).into_owned())
            }
            (5, Value::Bytes(summary)) => event.what = What::Scalars(scalars(summary)?),
            (7, Value::Bytes(log)) => {
                for field in Fields(log) {
                    if let (1, Value::Varint(status)) = field? {
                        if status == SESSION_START as u64 {
                            event.what = What::SessionStart;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(event)
}

fn scalars(summary: &[u8]) -> Result<Vec<(String, f32)>, String> {
    let mut values = Vec::new();
    for field in Fields(summary) {
        if let (1, Value::Bytes(entry)) = field? {
            let (mut name, mut value) = (String::new(), None);
            for field in Fields(entry) {
                match field? {
                    (1, Value::Bytes(tag)) => name = String::from_utf8_lossy(tag).into_owned(),
                    (2, Value::Fixed32(bits)) => value = Some(f32::from_bits(bits)),
                    _ => {}
                }
            }
            let value = value.ok_or_else(|| format!("summary value {name} is not a scalar"))?;
            values.push((name, value));
        }
    }
    Ok(values)
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const BYTES: u8 = 2;
const FIXED32: u8 = 5;
const SESSION_START: u8 = 1;

fn tag(field: u8, wire: u8) -> u8 {
    field << 3 | wire
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push(tag(field, BYTES));
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// The fields of a protobuf message: (number, value).
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.0.split_first().ok_or("a varint is cut short")?;
            self.0 = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err("a varint is longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("a field is cut short".into());
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = (|| {
            let key = self.varint()?;
            let value = match (key & 7) as u8 {
                VARINT => Value::Varint(self.varint()?),
                FIXED64 => Value::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().unwrap())),
                BYTES => {
                    let len = usize::try_from(self.varint()?).map_err(|_| "a length too large")?;
                    Value::Bytes(self.take(len)?)
                }
                FIXED32 => Value::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().unwrap())),
                wire => return Err(format!("wire type {wire} is not one this format uses")),
            };
            Ok((key >> 3, value))
        })();
        if field.is_err() {
            self.0 = &[];
        }
        Some(field)
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), a byte at a time from a table.
fn crc32c(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |crc, &b| {
        TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8)
    })
}

/// TFRecord's mask, which keeps the CRC of data that holds CRCs from being trivial.
fn masked_crc(bytes: &[u8]) -> u32 {
    crc32c(bytes).rotate_right(15).wrapping_add(0xA282_EAD8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_gives_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    /// The bytes protobuf gives this event (worked out by hand from the field numbers above:
    /// key bytes 0x09, 0x10, 0x2a, 0x0a, 0x0a, 0x15), so a file reads in TensorBoard, not
    /// only in this reader.
    #[test]
    fn a_scalar_event_encodes_as_protobuf_does() {
        let event = Event {
            wall_time: 1.5,
            step: 300,
            what: What::Scalars(vec![("a".into(), 2.0)]),
        };
        let mut want = vec![0x09];
        want.extend_from_slice(&1.5f64.to_le_bytes());
        want.extend_from_slice(&[0x10, 0xac, 0x02]); // 300 = 0b10_0101100
        want.extend_from_slice(&[0x2a, 0x0a, 0x0a, 0x08, 0x0a, 0x01, b'a', 0x15]);
        want.extend_from_slice(&2.0f32.to_le_bytes());
        assert_eq!(encode(&event), want);
    }

    /// A session start is field 7 (`session_log`; 6 is the deprecated `log_message`, which
    /// TensorBoard ignores) holding `status = START`.
    #[test]
    fn a_session_start_encodes_as_protobuf_does() {
        let event = Event {
            wall_time: 0.0,
            step: 5,
            what: What::SessionStart,
        };
        let mut want = vec![0x09];
        want.extend_from_slice(&0f64.to_le_bytes());
        want.extend_from_slice(&[0x10, 0x05, 0x3a, 0x02, 0x08, 0x01]);
        assert_eq!(encode(&event), want);
    }

    #[test]
    fn events_read_back_and_a_damaged_record_is_named() {
        let events = [
            Event {
                wall_time: 1.7e9,
                step: 0,
                what: What::FileVersion("brain.Event:2".into()),
            },
            Event {
                wall_time: 1.7e9 + 1.0,
                step: 41,
                what: What::SessionStart,
            },
            Event {
                wall_time: 1.7e9 + 2.0,
                step: 1 << 40,
                what: What::Scalars(vec![("train/loss".into(), 0.25), ("train/lr".into(), 0.1)]),
            },
        ];
        let mut bytes: Vec<u8> = events.iter().flat_map(record).collect();
        assert_eq!(read(&bytes).unwrap(), events);
        let last = bytes.len() - 6;
        bytes[last] ^= 1;
        assert_eq!(
            read(&bytes).unwrap_err(),
            "record 2: the payload's CRC does not match"
        );
        bytes.truncate(10);
        assert_eq!(read(&bytes).unwrap_err(), "record 0 is cut short at byte 8");
    }
}
