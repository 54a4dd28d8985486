// The smallest server: one listener and on_data. The generated `impl smoke::Server` also works
// through the trait.
use smoke::Server;

#[derive(Default)]
struct Minimal;

#[smoke::server(tcp = 0)]
impl Minimal {
    #[smoke::on_data]
    fn data(&mut self, _conn: &mut smoke::Conn, input: &[u8]) -> usize {
        input.len()
    }
}

fn main() {
    let config = <Minimal as Server>::config();
    assert_eq!(config.listeners(), [(smoke::Protocol::Tcp, smoke::Listen::Port(0))]);
    assert_eq!(config.runtime().threads, 0);
    assert_eq!(config.runtime().fd_cache, smoke::config::DEFAULT_FD_CACHE);
    assert_eq!(config.runtime().max_write_buffer, smoke::config::DEFAULT_MAX_WRITE_BUFFER);
}
