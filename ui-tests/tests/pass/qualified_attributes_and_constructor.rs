// `#[smoke::on_*]` paths without the prelude, a constructor-style on_connect instead of Default,
// "auto" threads and a host:port listener.
struct Session {
    peer_known: bool,
}

#[smoke::server(tcp = "127.0.0.1:7000", threads = "auto")]
impl Session {
    #[smoke::on_connect]
    fn open(conn: &mut smoke::Conn) -> Self {
        Session { peer_known: conn.peer_addr().is_ok() }
    }

    #[smoke::on_data]
    fn data(&mut self, _conn: &mut smoke::Conn<'_>, input: &[u8]) -> usize {
        let _ = self.peer_known;
        input.len()
    }
}

fn main() {
    let config = Session::config();
    assert_eq!(config.runtime().threads, 0, "auto");
    assert_eq!(config.listeners(), [(smoke::Protocol::Tcp, smoke::Listen::Addr("127.0.0.1:7000".into()))]);
    assert_eq!(config.runtime().idle_timeout, None);
}
