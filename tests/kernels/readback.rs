//! The non-blocking readback ring: values recorded in a step come back a poll or more later, in order,
//! and a full ring refuses instead of blocking.

use super::common::*;
use beitlab::gpu::{Dispatch, ReadbackRing};
use beitlab::ops::elementwise;

#[test]
fn ring_returns_values_in_order_without_blocking() {
    let c = ctx();
    let mut ring = ReadbackRing::new(c, 2, 16);
    let buf = poisoned(4);
    let mut got = Vec::new();
    for step in 0..5 {
        let mut enc = c.device.create_command_encoder(&Default::default());
        let fill = elementwise::fill(c, &buf, 4, step as f32).unwrap();
        Dispatch::record_all(&mut enc, "ring test", &fill);
        let ticket = ring.record(&mut enc, &buf);
        c.queue.submit([enc.finish()]);
        ring.after_submit();
        if ticket.is_none() {
            // Ring full: wait for the GPU here (a trainer would skip the metric instead) and try later.
            c.wait().unwrap();
        }
        got.extend(ring.collect(c));
    }
    c.wait().unwrap();
    got.extend(ring.collect(c));
    assert_eq!(ring.in_flight(), 0);
    let values: Vec<f32> = got
        .iter()
        .map(|(_, b)| bytemuck::pod_read_unaligned::<f32>(&b[..4]))
        .collect();
    let tickets: Vec<u64> = got.iter().map(|(t, _)| t.0).collect();
    assert!(
        tickets.windows(2).all(|w| w[0] < w[1]),
        "tickets out of order: {tickets:?}"
    );
    assert!(
        !values.is_empty() && values.iter().all(|v| (0.0..5.0).contains(v)),
        "{values:?}"
    );
}

#[test]
fn a_ring_that_must_not_lose_values_grows_instead() {
    let c = ctx();
    let mut ring = ReadbackRing::new(c, 1, 16);
    let buf = poisoned(4);
    let mut tickets = Vec::new();
    // Three copies in one submit with one slot: two more slots are added, nothing refused.
    let mut enc = c.device.create_command_encoder(&Default::default());
    for step in 0..3 {
        let fill = elementwise::fill(c, &buf, 4, step as f32).unwrap();
        Dispatch::record_all(&mut enc, "ring test", &fill);
        tickets.push(ring.record_always(&mut enc, &buf));
    }
    assert!(
        ring.record(&mut enc, &buf).is_none(),
        "record still refuses when full"
    );
    c.queue.submit([enc.finish()]);
    ring.after_submit();
    assert_eq!(ring.slots(), 3);
    c.wait().unwrap();
    let got = ring.collect(c);
    assert_eq!(got.iter().map(|(t, _)| *t).collect::<Vec<_>>(), tickets);
    let values: Vec<f32> = got
        .iter()
        .map(|(_, b)| bytemuck::pod_read_unaligned::<f32>(&b[..4]))
        .collect();
    assert_eq!(values, [0.0, 1.0, 2.0]);
}
