//! The emulator's clock: real time by default, frozen, set or advanced through the admin API so tests are deterministic.

use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;

/// A settable clock. All emulator timestamps come from here, never from `Utc::now()` directly.
#[derive(Debug, Default)]
pub struct Clock {
    inner: Mutex<ClockState>,
}

#[derive(Debug, Default)]
struct ClockState {
    /// When set, time stands still at this instant (advanced only by `advance`).
    frozen_at: Option<DateTime<Utc>>,
    /// Added to real time when not frozen.
    offset: Duration,
}

impl Clock {
    /// The current emulated time, with sub-second precision.
    pub fn now(&self) -> DateTime<Utc> {
        let state = self.inner.lock();
        match state.frozen_at {
            Some(t) => t,
            None => Utc::now() + state.offset,
        }
    }

    /// The current emulated time in whole seconds since the epoch (Salesforce stores whole seconds).
    pub fn now_secs(&self) -> i64 {
        self.now().timestamp()
    }

    /// The current emulated time in milliseconds since the epoch.
    pub fn now_millis(&self) -> i64 {
        self.now().timestamp_millis()
    }

    /// Freezes the clock at the current emulated instant, or lets it run again.
    pub fn freeze(&self, freeze: bool) {
        let now = self.now();
        let mut state = self.inner.lock();
        if freeze {
            state.frozen_at = Some(now);
        } else if let Some(frozen) = state.frozen_at.take() {
            state.offset = frozen - Utc::now();
        }
    }

    /// Moves the clock forward (or back, for negative values) by whole seconds.
    pub fn advance(&self, secs: i64) {
        let mut state = self.inner.lock();
        let delta = Duration::seconds(secs);
        match state.frozen_at.as_mut() {
            Some(t) => *t += delta,
            None => state.offset += delta,
        }
    }

    /// Sets the clock to an instant; a frozen clock stays frozen there.
    pub fn set(&self, at: DateTime<Utc>) {
        let mut state = self.inner.lock();
        match state.frozen_at.as_mut() {
            Some(t) => *t = at,
            None => state.offset = at - Utc::now(),
        }
    }

    /// Whether the clock is frozen.
    pub fn is_frozen(&self) -> bool {
        self.inner.lock().frozen_at.is_some()
    }
}
