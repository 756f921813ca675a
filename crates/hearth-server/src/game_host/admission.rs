//! Admission by measured load: the game host tells the login path to refuse
//! newcomers ("the server is busy: try again in N s") while its ticks take
//! most of their period or its queue of client messages fills, so the
//! players already in keep their round trips instead of everyone timing out
//! together. Sans-IO: the host reports each step's cost and its queue, and
//! reads the verdict.
//!
//! Busy when the smoothed step cost passes [`BUSY_PERMILLE`] of the tick
//! period, or the smoothed queue is half full; no longer busy once the cost
//! is under [`CLEAR_PERMILLE`] and the queue under a quarter (hysteresis:
//! the verdict does not flap at the edge), or once both have stayed under
//! the busy levels for [`CALM_SECONDS`] (so a server whose usual load lies
//! between the two levels is not held busy for ever by one slow step). The
//! retry time grows while the server stays busy, so refused clients spread
//! their returns.
//!
//! The process's CPU counts too ([`Admission::record_cpu`]): a crowd's
//! datagrams cost the gates more than its ticks cost the game host, and on
//! a machine whose cores are all in use the ticks are not what shows it.
//!
//! Shedding, in order: newcomers are refused first (logins, and changes of
//! line and zone); while the server stays over its levels with newcomers
//! refused, far actors are refreshed less often and every player's byte
//! budget is cut by a quarter each second, down to [`LEAST_BUDGET_PERMILLE`]
//! (what does not fit waits, by priority, as on a slow link); under the
//! clear levels it grows back by an eighth a second. Reliable game
//! messages, spawns, despawns and a player's own actor are never shed.

/// Busy above this much of the tick period, in thousandths.
pub const BUSY_PERMILLE: u64 = 800;
/// Admitting again below this much.
pub const CLEAR_PERMILLE: u64 = 600;
/// Seconds under the busy levels after which a busy server admits again,
/// even above the clear levels.
pub const CALM_SECONDS: u64 = 3;
/// Busy above this share of the cores the process may run on (all its
/// threads together), in thousandths; admitting again below the second.
pub const CPU_BUSY_PERMILLE: u64 = 900;
pub const CPU_CLEAR_PERMILLE: u64 = 750;
/// The smallest share of their byte budgets players are cut to, in
/// thousandths.
pub const LEAST_BUDGET_PERMILLE: u32 = 250;
/// Steps the smoothed cost weighs, about (an exponential average).
const SMOOTHING: u64 = 8;
/// What a refused client is told to wait, at first and at most, in seconds.
const FIRST_RETRY_S: u64 = 2;
const LONGEST_RETRY_S: u64 = 30;

/// The verdict and what it is made from.
#[derive(Debug, Clone)]
pub struct Admission {
    /// The tick period, in microseconds.
    period_us: u64,
    /// Each step's cost, smoothed, in microseconds (times SMOOTHING, so
    /// integer arithmetic keeps its precision).
    smoothed_x8: u64,
    /// The queue's fill in thousandths, smoothed the same way (one burst
    /// landing as a step ends is not a spell).
    queue_x8: u64,
    busy: bool,
    /// Steps in a row under the busy levels while busy.
    calm_steps: u64,
    /// Steps in a row the server has been busy: the retry time grows with it.
    busy_steps: u64,
    /// Times the verdict turned to busy, for /metrics.
    pub busy_spells: u64,
    /// The process's latest CPU use, in thousandths of its cores.
    cpu_permille: u64,
    /// The share of their byte budgets players are sent, in thousandths.
    budget_permille: u32,
    /// Steps until the budget share is looked at again (once a second).
    steps_to_budget: u64,
}

impl Admission {
    pub fn new(period_us: u64) -> Self {
        Self {
            period_us: period_us.max(1),
            smoothed_x8: 0,
            queue_x8: 0,
            busy: false,
            calm_steps: 0,
            busy_steps: 0,
            busy_spells: 0,
            cpu_permille: 0,
            budget_permille: 1000,
            steps_to_budget: 0,
        }
    }

    /// The process used `permille` thousandths of its cores over the last
    /// sample ([`super::process_cpu::ProcessCpu`]).
    pub fn record_cpu(&mut self, permille: u64) {
        self.cpu_permille = permille;
    }

    /// The process's latest CPU use, in thousandths of its cores.
    pub fn cpu_permille(&self) -> u64 {
        self.cpu_permille
    }

    /// One step took `step_us`; the client message queue holds `queued` of
    /// `capacity`.
    pub fn record(&mut self, step_us: u64, queued: usize, capacity: usize) {
        // x8 += cost - x8 / 8: the average of about the last eight steps.
        self.smoothed_x8 = self.smoothed_x8 - self.smoothed_x8 / SMOOTHING + step_us;
        let fill = (queued.min(capacity) as u64 * 1000) / capacity.max(1) as u64;
        self.queue_x8 = self.queue_x8 - self.queue_x8 / SMOOTHING + fill;
        let load = self.load_permille();
        let queue = self.queue_x8 / SMOOTHING;
        let cpu = self.cpu_permille;
        let over = load > BUSY_PERMILLE || queue >= 500 || cpu > CPU_BUSY_PERMILLE;
        let clear = load < CLEAR_PERMILLE && queue < 250 && cpu < CPU_CLEAR_PERMILLE;
        let was = self.busy;
        self.busy = if was {
            self.calm_steps = if over { 0 } else { self.calm_steps + 1 };
            let calm_for = self.calm_steps * self.period_us / 1_000_000;
            !clear && calm_for < CALM_SECONDS
        } else {
            over
        };
        if self.steps_to_budget == 0 {
            self.steps_to_budget = (1_000_000 / self.period_us).max(1);
            // Cut only while refusing newcomers has not been enough: busy
            // before this step and still over.
            self.budget_permille = if was && over {
                (self.budget_permille * 3 / 4).max(LEAST_BUDGET_PERMILLE)
            } else if clear {
                (self.budget_permille + 125).min(1000)
            } else {
                self.budget_permille
            };
        }
        self.steps_to_budget -= 1;
        if !self.busy {
            self.calm_steps = 0;
        }
        if self.busy {
            self.busy_steps += 1;
            if !was {
                self.busy_spells += 1;
            }
        } else {
            self.busy_steps = 0;
        }
    }

    /// The smoothed step cost as thousandths of the tick period.
    pub fn load_permille(&self) -> u64 {
        self.smoothed_x8 / SMOOTHING * 1000 / self.period_us
    }

    /// What the lines shed now: far actors' refresh while busy or while
    /// budgets are cut, and the budgets' share.
    pub fn shedding(&self) -> hearth_game::Shedding {
        hearth_game::Shedding {
            far_refresh_shift: u32::from(self.busy || self.budget_permille < 1000),
            budget_permille: self.budget_permille,
        }
    }

    /// `Some(seconds to wait)` while newcomers are refused.
    pub fn refusal(&self) -> Option<u64> {
        if !self.busy {
            return None;
        }
        // Doubling every 5 s busy (at 20 ticks a second), from 2 s to 30 s.
        let busy_s = self.busy_steps * self.period_us / 1_000_000;
        let doublings = (busy_s / 5).min(4) as u32;
        Some((FIRST_RETRY_S << doublings).min(LONGEST_RETRY_S))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_past_the_budget_clear_only_well_under_it_and_the_wait_grows() {
        // 20 ticks a second: a 50 ms period.
        let mut admission = Admission::new(50_000);
        for _ in 0..100 {
            admission.record(10_000, 0, 100);
        }
        assert_eq!(admission.refusal(), None);
        assert_eq!(admission.load_permille(), 200);
        // Steps of 45 ms: 90 % of the period, busy within a few steps.
        let mut steps = 0;
        while admission.refusal().is_none() {
            admission.record(45_000, 0, 100);
            steps += 1;
            assert!(steps < 20, "busy within a second");
        }
        assert_eq!(admission.refusal(), Some(2));
        assert_eq!(admission.busy_spells, 1);
        // 35 ms (70 %) is under the budget but not clear: still busy.
        for _ in 0..50 {
            admission.record(35_000, 0, 100);
        }
        assert!(admission.refusal().is_some(), "no flapping at the edge");
        // Busy for over 5 s (100 steps): the wait has doubled.
        for _ in 0..60 {
            admission.record(45_000, 0, 100);
        }
        assert_eq!(admission.refusal(), Some(4));
        // Light again: admitting within a second, and the wait starts over.
        let mut steps = 0;
        while admission.refusal().is_some() {
            admission.record(5_000, 0, 100);
            steps += 1;
            assert!(steps < 20, "clear within a second");
        }
        admission.record(45_000, 0, 100);
        assert_eq!(admission.busy_spells, 1, "one step is not a spell");
    }

    #[test]
    fn a_process_over_its_cores_refuses_newcomers_first_then_cuts_budgets_and_grows_them_back() {
        let mut admission = Admission::new(50_000);
        // Light ticks, but the gates keep the process at 95 % of its cores.
        admission.record_cpu(950);
        admission.record(5_000, 0, 100);
        assert_eq!(admission.refusal(), Some(2), "newcomers first");
        assert_eq!(admission.shedding().budget_permille, 1000);
        assert_eq!(admission.shedding().far_refresh_shift, 1);
        // Still over a second later: budgets cut by a quarter a second, to
        // the least share and no lower.
        let mut shares = Vec::new();
        for _ in 0..10 * 20 {
            admission.record(5_000, 0, 100);
            if shares.last() != Some(&admission.shedding().budget_permille) {
                shares.push(admission.shedding().budget_permille);
            }
        }
        assert_eq!(shares, [1000, 750, 562, 421, 315, 250]);
        // 80 %: between the levels, nothing changes.
        admission.record_cpu(800);
        for _ in 0..40 {
            admission.record(5_000, 0, 100);
        }
        assert_eq!(admission.shedding().budget_permille, 250);
        // Clear: admitting again, and the budgets grow back an eighth a
        // second.
        admission.record_cpu(300);
        let mut steps = 0;
        while admission.shedding() != hearth_game::Shedding::NONE {
            admission.record(5_000, 0, 100);
            steps += 1;
            assert!(steps <= 7 * 20, "back to full within 7 s");
        }
        assert!(steps >= 5 * 20, "not at once: {steps} steps");
        assert_eq!(admission.refusal(), None);
    }

    #[test]
    fn a_filling_queue_makes_the_server_busy_even_with_light_ticks_but_one_burst_does_not() {
        let mut admission = Admission::new(50_000);
        admission.record(1_000, 900, 1_000);
        assert_eq!(admission.refusal(), None, "one burst at a step's end");
        let mut steps = 0;
        while admission.refusal().is_none() {
            admission.record(1_000, 700, 1_000);
            steps += 1;
            assert!(steps < 20);
        }
        let mut steps = 0;
        while admission.refusal().is_some() {
            admission.record(1_000, 0, 1_000);
            steps += 1;
            assert!(steps < 40, "the queue drained: admitting again");
        }
    }

    #[test]
    fn a_server_whose_usual_load_is_between_the_levels_is_not_held_busy_by_one_spike() {
        let mut admission = Admission::new(50_000);
        // 70 % of the period: under the busy level, over the clear one.
        for _ in 0..100 {
            admission.record(35_000, 0, 100);
        }
        assert_eq!(admission.refusal(), None);
        // One step of a second: busy.
        admission.record(1_000_000, 0, 100);
        assert!(admission.refusal().is_some());
        // Back at 70 %: admitting again within the calm period and a
        // second of smoothing, not never.
        let mut steps = 0;
        while admission.refusal().is_some() {
            admission.record(35_000, 0, 100);
            steps += 1;
            assert!(
                steps <= (CALM_SECONDS + 2) * 20,
                "still busy after {steps} steps"
            );
        }
        assert!(
            steps >= CALM_SECONDS * 20,
            "not before the calm period: {steps}"
        );
    }
}
