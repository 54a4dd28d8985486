// Values passed through macro_rules (`$port:expr` arrives as an invisible group), a renamed
// import of the crate's attributes, and cfg-gated handlers, including two for one handler.
use smoke::prelude::*;

macro_rules! echo_server_on {
    ($name:ident, $port:expr, $threads:expr) => {
        #[derive(Default)]
        struct $name;

        #[smoke::server(tcp = $port, threads = $threads)]
        impl $name {
            #[on_data]
            fn data(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
                conn.write(input);
                input.len()
            }
        }
    };
}

echo_server_on!(FromMacro, 7777, 3);

#[derive(Default)]
struct Gated;

#[smoke::server(tcp = 7778)]
impl Gated {
    #[cfg(unix)]
    #[on_data]
    fn data_unix(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }

    #[cfg(not(unix))]
    #[on_data]
    fn data_elsewhere(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }

    #[cfg(any())]
    #[on_close]
    fn never_compiled(&mut self, _conn: &mut Conn, _why: CloseReason) {}
}

fn main() {
    assert_eq!(FromMacro::config().listeners(), [(smoke::Protocol::Tcp, smoke::Listen::Port(7777))]);
    assert_eq!(FromMacro::config().runtime().threads, 3);
    assert_eq!(Gated::config().listeners(), [(smoke::Protocol::Tcp, smoke::Listen::Port(7778))]);
}
