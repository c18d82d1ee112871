//! `switch:NAME`: an Ethernet switch inside the axvm process, so VMs of one process share a
//! network without any host interface (and without privileges).
//!
//! Every [`Switch`] has a name; all devices of the process that name the same switch get a
//! [`SwitchPort`] on it. The switch learns which port each source MAC address sends from and
//! forwards a frame to the one port its destination was learned on; a frame for an unknown
//! destination, or for a broadcast or multicast address, goes to every other port. A frame is
//! never sent back to the port it came from.
//!
//! Each port has a bounded inbox: a VM that does not take its frames (no receive buffers,
//! a stopped driver) loses the newest ones, counted, instead of making the switch hold an
//! unbounded backlog or stalling the sender. An eventfd per port wakes the receiving VM's
//! virtio thread when a frame arrives.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use vmm_sys_util::eventfd::EventFd;

/// How many frames wait for a port before newer ones are dropped.
pub const PORT_QUEUE_FRAMES: usize = 256;

/// The switches of this process by name. Ports hold their switch; the registry only
/// remembers it, so a switch whose last port is gone is gone too.
static SWITCHES: LazyLock<Mutex<HashMap<String, Weak<Switch>>>> = LazyLock::new(Mutex::default);

/// Locks `mutex`, ignoring poisoning: the data behind these locks (queues, tables) stays
/// consistent whatever panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A learning Ethernet switch shared by the VMs of this process.
///
/// ```
/// use axvm_kvm::Switch;
/// let switch = Switch::named("doc-lan");
/// let a = switch.connect()?;
/// let b = switch.connect()?;
/// // A broadcast from a reaches b, not a.
/// let frame = [[0xff; 6], [0x52, 0x54, 0, 0, 0, 1]].concat();
/// a.send(&frame);
/// assert_eq!(b.receive(), Some(frame));
/// assert_eq!(a.receive(), None);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Switch {
    name: String,
    state: Mutex<SwitchState>,
}

#[derive(Debug, Default)]
struct SwitchState {
    /// The connected ports by id.
    ports: HashMap<u64, Arc<Inbox>>,
    /// Where each source address was last seen.
    learned: HashMap<[u8; 6], u64>,
    next_id: u64,
}

impl Switch {
    /// The switch of this process called `name`, created if no port holds one.
    pub fn named(name: &str) -> Arc<Switch> {
        let mut switches = lock(&SWITCHES);
        if let Some(switch) = switches.get(name).and_then(Weak::upgrade) {
            return switch;
        }
        switches.retain(|_, switch| switch.strong_count() > 0);
        let switch = Arc::new(Switch {
            name: name.into(),
            state: Mutex::default(),
        });
        switches.insert(name.into(), Arc::downgrade(&switch));
        switch
    }

    /// Its name, as configs write it after `switch:`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new port; it leaves the switch when dropped. Fails only when its eventfd cannot
    /// be made.
    pub fn connect(self: &Arc<Self>) -> std::io::Result<SwitchPort> {
        let inbox = Arc::new(Inbox {
            frames: Mutex::default(),
            event: EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?,
            dropped: AtomicU64::new(0),
        });
        let mut state = lock(&self.state);
        let id = state.next_id;
        state.next_id += 1;
        state.ports.insert(id, inbox.clone());
        Ok(SwitchPort {
            id,
            switch: self.clone(),
            inbox,
        })
    }

    /// How many ports are connected.
    pub fn ports(&self) -> usize {
        lock(&self.state).ports.len()
    }

    /// Forwards `frame`, sent from port `from`.
    fn forward(&self, from: u64, frame: &[u8]) {
        let (Some(destination), Some(source)) = (mac_at(frame, 0), mac_at(frame, 6)) else {
            log::debug!(
                "switch {}: a {}-byte frame is too short for Ethernet; dropped",
                self.name,
                frame.len()
            );
            return;
        };
        let mut state = lock(&self.state);
        if !is_group(source) {
            state.learned.insert(source, from);
        }
        let known = (!is_group(destination))
            .then(|| state.learned.get(&destination).copied())
            .flatten();
        match known {
            // The destination is behind the sender's own port: nothing to forward.
            Some(port) if port == from => {}
            Some(port) => {
                if let Some(inbox) = state.ports.get(&port) {
                    inbox.deliver(frame);
                }
            }
            None => state
                .ports
                .iter()
                .filter(|(&id, _)| id != from)
                .for_each(|(_, inbox)| inbox.deliver(frame)),
        }
    }

    fn disconnect(&self, id: u64) {
        let mut state = lock(&self.state);
        state.ports.remove(&id);
        state.learned.retain(|_, port| *port != id);
    }
}

/// The MAC address at `offset` of `frame`, if the frame is that long.
fn mac_at(frame: &[u8], offset: usize) -> Option<[u8; 6]> {
    frame.get(offset..offset + 6)?.try_into().ok()
}

/// Whether `mac` is a broadcast or multicast (group) address.
fn is_group(mac: [u8; 6]) -> bool {
    mac[0] & 1 != 0
}

/// A port's frames waiting for its VM.
#[derive(Debug)]
struct Inbox {
    frames: Mutex<VecDeque<Vec<u8>>>,
    /// Signalled when a frame arrives.
    event: EventFd,
    /// Frames lost because the inbox was full.
    dropped: AtomicU64,
}

impl Inbox {
    fn deliver(&self, frame: &[u8]) {
        let mut frames = lock(&self.frames);
        if frames.len() >= PORT_QUEUE_FRAMES {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        frames.push_back(frame.to_vec());
        drop(frames);
        if let Err(err) = self.event.write(1) {
            log::warn!("switch port: cannot signal a frame's arrival: {err}");
        }
    }
}

/// One device's connection to a [`Switch`].
#[derive(Debug)]
pub struct SwitchPort {
    id: u64,
    switch: Arc<Switch>,
    inbox: Arc<Inbox>,
}

impl SwitchPort {
    /// Sends an Ethernet frame (destination and source MAC first) into the switch.
    pub fn send(&self, frame: &[u8]) {
        self.switch.forward(self.id, frame);
    }

    /// The oldest frame waiting for this port, if any.
    pub fn receive(&self) -> Option<Vec<u8>> {
        lock(&self.inbox.frames).pop_front()
    }

    /// The eventfd signalled when a frame arrives (read it to clear it before draining).
    pub fn event(&self) -> &EventFd {
        &self.inbox.event
    }

    /// Frames dropped because this port's inbox was full.
    pub fn dropped(&self) -> u64 {
        self.inbox.dropped.load(Ordering::Relaxed)
    }

    /// The switch.
    pub fn switch(&self) -> &Arc<Switch> {
        &self.switch
    }
}

impl Drop for SwitchPort {
    fn drop(&mut self) {
        self.switch.disconnect(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROADCAST: [u8; 6] = [0xff; 6];

    fn mac(last: u8) -> [u8; 6] {
        [0x52, 0x54, 0, 0, 0, last]
    }

    fn frame(destination: [u8; 6], source: [u8; 6], payload: &str) -> Vec<u8> {
        [
            &destination[..],
            &source[..],
            &[0x88, 0xb5],
            payload.as_bytes(),
        ]
        .concat()
    }

    fn drain(port: &SwitchPort) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| port.receive()).collect()
    }

    /// Three ports on a switch of its own (tests run in parallel in one process).
    fn three(name: &str) -> (SwitchPort, SwitchPort, SwitchPort) {
        let switch = Switch::named(name);
        (
            switch.connect().unwrap(),
            switch.connect().unwrap(),
            switch.connect().unwrap(),
        )
    }

    #[test]
    fn unknown_and_broadcast_destinations_flood_to_every_other_port() {
        let (a, b, c) = three("test-flood");
        let unknown = frame(mac(9), mac(1), "unknown");
        a.send(&unknown);
        let broadcast = frame(BROADCAST, mac(1), "broadcast");
        a.send(&broadcast);
        let multicast = frame([0x01, 0, 0x5e, 0, 0, 1], mac(1), "multicast");
        a.send(&multicast);
        let all = vec![unknown, broadcast, multicast];
        assert_eq!(drain(&b), all);
        assert_eq!(drain(&c), all);
        assert!(drain(&a).is_empty(), "a frame came back to its sender");
    }

    #[test]
    fn learned_destinations_get_their_frames_alone() {
        let (a, b, c) = three("test-learning");
        a.send(&frame(BROADCAST, mac(1), "hello from a"));
        drain(&b);
        drain(&c);
        let reply = frame(mac(1), mac(2), "to a");
        b.send(&reply);
        assert_eq!(drain(&a), vec![reply]);
        assert!(drain(&c).is_empty(), "c saw a frame for a learned address");
        // b is learned now too.
        let to_b = frame(mac(2), mac(3), "to b");
        c.send(&to_b);
        assert_eq!(drain(&b), vec![to_b]);
        assert!(drain(&a).is_empty());
    }

    #[test]
    fn a_frame_for_the_senders_own_segment_is_not_echoed() {
        let (a, b, _c) = three("test-no-echo");
        a.send(&frame(BROADCAST, mac(1), "learn a"));
        drain(&b);
        a.send(&frame(mac(1), mac(7), "to a, from behind a"));
        assert!(drain(&a).is_empty());
        assert!(drain(&b).is_empty());
    }

    #[test]
    fn a_dropped_port_leaves_the_switch_and_its_addresses_are_forgotten() {
        let (a, b, c) = three("test-removal");
        c.send(&frame(BROADCAST, mac(3), "learn c"));
        drain(&a);
        drain(&b);
        let switch = a.switch().clone();
        drop(c);
        assert_eq!(switch.ports(), 2);
        // c's address is unknown again: the frame floods instead of vanishing.
        let to_c = frame(mac(3), mac(1), "to c");
        a.send(&to_c);
        assert_eq!(drain(&b), vec![to_c]);
    }

    #[test]
    fn a_full_inbox_drops_and_counts_and_the_event_fires() {
        let (a, b, _c) = three("test-full");
        for n in 0..PORT_QUEUE_FRAMES + 5 {
            a.send(&frame(BROADCAST, mac(1), &n.to_string()));
        }
        assert_eq!(b.dropped(), 5);
        assert!(b.event().read().unwrap() >= 1);
        assert_eq!(drain(&b).len(), PORT_QUEUE_FRAMES);
    }

    #[test]
    fn switches_are_shared_by_name_until_their_last_port_goes() {
        let first = Switch::named("test-registry").connect().unwrap();
        let second = Switch::named("test-registry").connect().unwrap();
        assert!(Arc::ptr_eq(first.switch(), second.switch()));
        assert_eq!(first.switch().ports(), 2);
        assert!(!Arc::ptr_eq(
            first.switch(),
            &Switch::named("test-registry-other")
        ));
        drop((first, second));
        assert_eq!(Switch::named("test-registry").ports(), 0);
    }

    #[test]
    fn runt_frames_are_dropped() {
        let (a, b, _c) = three("test-runt");
        a.send(&[0xff; 11]);
        assert!(drain(&b).is_empty());
    }
}
