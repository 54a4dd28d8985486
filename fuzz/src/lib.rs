//! What the fuzz targets share: cutting an input into the pieces a connection would have read.

/// Splits `data` into its cuts and its payload: the first byte says how many cut points follow
/// (up to 15), each a byte giving a position in the payload as a fraction of its length. The
/// fuzzer chooses the segmentation as it chooses the bytes.
pub fn pieces(data: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let Some((&count, rest)) = data.split_first() else { return (Vec::new(), data) };
    let count = usize::from(count % 16).min(rest.len());
    let (cuts, payload) = rest.split_at(count);
    let mut at: Vec<usize> = cuts.iter().map(|&c| usize::from(c) * payload.len() / 256).collect();
    at.sort_unstable();
    let mut pieces = Vec::with_capacity(at.len() + 1);
    let mut start = 0;
    for end in at.into_iter().chain([payload.len()]) {
        pieces.push(&payload[start..end]);
        start = end;
    }
    (pieces, payload)
}
