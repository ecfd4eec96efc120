//! A minimal POSIX ustar writer (regular files only), enough for WebDataset shards: 512-byte headers, names up to
//! 100 bytes, mode 0644, mtime 0 (byte-identical shards for the same rows), two zero blocks at the end.

use std::io::Write;

fn octal(buf: &mut [u8], v: u64) {
    let s = format!("{:0width$o}\0", v, width = buf.len() - 1);
    buf.copy_from_slice(s.as_bytes());
}

/// The 512-byte header of a regular file.
pub fn header(name: &str, size: u64) -> std::io::Result<[u8; 512]> {
    let nb = name.as_bytes();
    if nb.len() > 100 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("tar member name too long: {name}"),
        ));
    }
    let mut h = [0u8; 512];
    h[..nb.len()].copy_from_slice(nb);
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0);
    h[148..156].copy_from_slice(b"        ");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    Ok(h)
}

/// Appends one member.
pub fn append(w: &mut impl Write, name: &str, data: &[u8]) -> std::io::Result<u64> {
    w.write_all(&header(name, data.len() as u64)?)?;
    w.write_all(data)?;
    let pad = (512 - data.len() % 512) % 512;
    w.write_all(&vec![0u8; pad])?;
    Ok(512 + (data.len() + pad) as u64)
}

/// Bytes a member takes in the archive.
pub fn member_size(len: usize) -> u64 {
    512 + len.div_ceil(512) as u64 * 512
}

/// Ends the archive.
pub fn finish(w: &mut impl Write) -> std::io::Result<()> {
    w.write_all(&[0u8; 1024])
}
