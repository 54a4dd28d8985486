use smoke::prelude::*;

#[derive(Default)]
struct NoDatagrams;

// A udp server needs #[on_datagram]; a tick needs its cadence and takes no `self`.
#[smoke::server(udp = 9092)]
impl NoDatagrams {
    #[on_tick]
    fn tick(worker: &mut Worker<Self>) {
        let _ = worker;
    }

}

#[derive(Default)]
struct TickWithSelf;

#[smoke::server(udp = 9093)]
impl TickWithSelf {
    #[on_datagram]
    fn datagram(&mut self, _peer: &mut Peer, _packet: &[u8]) {}

    #[on_tick(ms = 0)]
    fn zero(worker: &mut Worker<Self>) {
        let _ = worker;
    }
}

#[derive(Default)]
struct TickWithReceiver;

#[smoke::server(udp = 9094)]
impl TickWithReceiver {
    #[on_datagram]
    fn datagram(&mut self, _peer: &mut Peer, _packet: &[u8]) {}

    #[on_tick(ms = 10)]
    fn tick_with_self(&mut self, worker: &mut Worker<Self>) {
        let _ = worker;
    }
}

#[derive(Default)]
struct NoUdp;

// The packet ring feeds udp sessions: without a udp listener it has nowhere to go.
#[smoke::server(tcp = 9000, pfring = "eth0")]
impl NoUdp {
    #[on_data]
    fn data(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }

    #[on_datagram]
    fn datagram(&mut self, _peer: &mut Peer, _packet: &[u8]) {}
}

fn main() {}
