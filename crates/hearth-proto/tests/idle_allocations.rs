//! An idle session's timer wakeups that send nothing allocate nothing
//! (counted with a counting global allocator), so idle sessions cost no
//! allocator traffic between heartbeats.
//!
//! The count is per thread: `cargo test` runs this file's tests on parallel
//! threads of one process, and a shared counter would charge one test with
//! the other's allocations.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use common::{LinkProfile, World};

struct Counting;

thread_local! {
    // `const` initialised and without a destructor, so the thread-local
    // itself never allocates (which would recurse into the allocator).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Counts one allocation on the calling thread.
fn count_allocation() {
    // `try_with`: an allocation made while the thread is being torn down
    // finds the slot gone; it is not one the tests measure.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

/// Allocations made so far by the calling thread.
fn allocations_on_this_thread() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn timer_wakeups_that_send_nothing_allocate_nothing() {
    let mut world = World::with_defaults(5, LinkProfile::PERFECT);
    world.login_over_udp();
    world.run_for(Duration::from_secs(3));
    // The server alone, through its own wakeups, for ten seconds: nothing
    // arrives, so only its timers run.
    let start = world.now;
    let (mut quiet, mut quiet_allocations, mut sending) = (0u32, 0u64, 0u32);
    for _ in 0..1_000 {
        let Some(at) = world.server.poll_timeout() else {
            break;
        };
        if at > start + Duration::from_secs(10) {
            break;
        }
        let before = allocations_on_this_thread();
        world.server.handle_timeout(at.max(world.now));
        let mut sent = 0;
        while world.server.poll_transmit().is_some() {
            sent += 1;
        }
        while world.server.poll_event().is_some() {}
        if sent == 0 {
            quiet += 1;
            quiet_allocations += allocations_on_this_thread() - before;
        } else {
            sending += 1;
        }
    }
    assert!(
        quiet > 0,
        "the server had quiet wakeups to measure ({sending} sent something)"
    );
    assert_eq!(
        quiet_allocations, 0,
        "{quiet} quiet wakeups allocated {quiet_allocations} times"
    );
}

#[test]
fn an_idle_session_wakes_only_for_its_heartbeats() {
    let mut world = World::with_defaults(6, LinkProfile::PERFECT);
    world.login_over_udp();
    world.run_for(Duration::from_secs(3));
    // The server alone for nine seconds (its idle timeout is ten): count
    // its wakeups, and those that sent nothing.
    let start = world.now;
    let (mut heartbeats, mut quiet) = (0u32, 0u32);
    while let Some(at) = world.server.poll_timeout() {
        if at > start + Duration::from_secs(9) {
            break;
        }
        world.server.handle_timeout(at.max(world.now));
        let mut sent = 0;
        while world.server.poll_transmit().is_some() {
            sent += 1;
        }
        while world.server.poll_event().is_some() {}
        match sent {
            0 => quiet += 1,
            _ => heartbeats += 1,
        }
        assert!(heartbeats + quiet < 1_000, "runaway wakeups");
    }
    // One wakeup a heartbeat interval, each sending its heartbeat; before an
    // idle KCP was left alone, a hundred a second (KCP's 10 ms interval),
    // and then a second, empty wakeup after each heartbeat.
    assert_eq!(
        quiet, 0,
        "no wakeup between heartbeats ({heartbeats} heartbeats)"
    );
    assert!(
        (8..=10).contains(&heartbeats),
        "{heartbeats} heartbeats in nine seconds"
    );
}
