//! The kernel's random bytes, for keys and nonces (`getrandom(2)`): secure game sessions draw
//! their challenge key at start and each connect token its keys and nonce.

use std::io;

/// Fills `bytes` from the kernel's CSPRNG, blocking only until it is first seeded at boot.
pub(crate) fn fill_random(bytes: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < bytes.len() {
        let rest = &mut bytes[filled..];
        // SAFETY: the pointer and length describe `rest`, a live, exclusively borrowed slice the
        // kernel writes at most `rest.len()` bytes into.
        let got = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if got < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        filled += got as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_draws_differ_and_fill_every_byte_position() {
        let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
        super::fill_random(&mut a).unwrap();
        super::fill_random(&mut b).unwrap();
        assert_ne!(a, b);
        // 64 zero bytes in a row from a CSPRNG has probability 2^-512.
        assert!(a.iter().any(|&byte| byte != 0));
    }
}
