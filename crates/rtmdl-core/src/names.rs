//! Names a user typed (config keys, function and source names): the known
//! one nearest to a typo, for "did you mean ...?" in error messages.

/// The known name nearest to `name` by edit distance, if it is close enough
/// to be a typo (at most a third of the longer name, and at least 2).
pub fn nearest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let (best, dist) = known
        .into_iter()
        .map(|k| (k, strsim::levenshtein(name, k)))
        .min_by_key(|&(_, d)| d)?;
    let limit = (name.chars().count().max(best.len()) / 3).max(2);
    (dist <= limit).then_some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_finds_typos_only() {
        let known = ["nms", "softmax_top1", "identity"];
        assert_eq!(nearest("softmax_top", known), Some("softmax_top1"));
        assert_eq!(nearest("nsm", known), Some("nms"));
        assert_eq!(nearest("completely_else", known), None);
    }
}
