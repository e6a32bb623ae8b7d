//! The literal children of a tree node: level text → node index.

use std::collections::HashMap;

/// Above this many children a node switches from a scanned `Vec` to a `HashMap`.
///
/// Most nodes of a real topic tree have one child (`device/{id}/temp`): a short `Vec`
/// costs one small allocation and a few string compares, where a `HashMap` costs a table
/// and a SipHash of the level on every lookup.
const FEW_CHILDREN_MAX: usize = 8;

/// Literal (non-wildcard) children of a node, keyed by their level's text.
#[derive(Debug)]
pub(crate) enum Children {
    /// Up to [`FEW_CHILDREN_MAX`] children, scanned in order.
    Few(Vec<(Box<str>, u32)>),
    /// More children; SipHash keeps a flood of chosen level names from degrading lookups.
    // Boxed so that `Children` stays the size of a `Vec`: every node pays for the enum,
    // few nodes are wide.
    #[allow(clippy::box_collection)]
    Many(Box<HashMap<Box<str>, u32>>),
}

impl Default for Children {
    fn default() -> Self {
        Children::Few(Vec::new())
    }
}

impl Children {
    /// The child for `level`, if any.
    #[inline]
    pub(crate) fn get(&self, level: &str) -> Option<u32> {
        match self {
            Children::Few(few) => few.iter().find(|(k, _)| **k == *level).map(|&(_, i)| i),
            Children::Many(many) => many.get(level).copied(),
        }
    }

    /// Adds a child; the caller has checked that `level` is absent.
    pub(crate) fn insert(&mut self, level: &str, index: u32) {
        debug_assert!(self.get(level).is_none());
        match self {
            Children::Few(few) if few.len() < FEW_CHILDREN_MAX => few.push((level.into(), index)),
            Children::Few(few) => {
                let mut many: HashMap<Box<str>, u32> = std::mem::take(few).into_iter().collect();
                many.insert(level.into(), index);
                *self = Children::Many(Box::new(many));
            }
            Children::Many(many) => {
                many.insert(level.into(), index);
            }
        }
    }

    /// Removes the child for `level`; returns its index.
    pub(crate) fn remove(&mut self, level: &str) -> Option<u32> {
        match self {
            Children::Few(few) => {
                let position = few.iter().position(|(k, _)| **k == *level)?;
                let (_, index) = few.swap_remove(position);
                if few.is_empty() {
                    // Give the buffer back: a node that churns must not keep it.
                    *few = Vec::new();
                }
                Some(index)
            }
            Children::Many(many) => {
                let index = many.remove(level)?;
                // A HashMap never shrinks by itself; go back to a Vec (with some slack,
                // so a node at the threshold does not flip on every change).
                if many.len() <= FEW_CHILDREN_MAX / 2 {
                    *self = Children::Few(std::mem::take(&mut **many).into_iter().collect());
                }
                Some(index)
            }
        }
    }

    /// Number of children.
    pub(crate) fn len(&self) -> usize {
        match self {
            Children::Few(few) => few.len(),
            Children::Many(many) => many.len(),
        }
    }

    /// Whether the node has no literal child.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every `(level, index)`, in no particular order.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&str, u32)) {
        match self {
            Children::Few(few) => few.iter().for_each(|(k, i)| f(k, *i)),
            Children::Many(many) => many.iter().for_each(|(k, i)| f(k, *i)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_as_small_as_a_vec() {
        assert_eq!(std::mem::size_of::<Children>(), std::mem::size_of::<Vec<(Box<str>, u32)>>());
    }

    #[test]
    fn children_grow_into_a_map_and_shrink_back() {
        let mut children = Children::default();
        let names: Vec<String> = (0..40).map(|i| format!("level{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            children.insert(name, i as u32);
        }
        assert!(matches!(children, Children::Many(_)));
        assert_eq!(children.len(), 40);
        for (i, name) in names.iter().enumerate() {
            assert_eq!(children.get(name), Some(i as u32));
        }
        assert_eq!(children.get("absent"), None);
        let mut seen = 0;
        children.for_each(|_, _| seen += 1);
        assert_eq!(seen, 40);
        for (i, name) in names.iter().enumerate() {
            assert_eq!(children.remove(name), Some(i as u32));
            assert_eq!(children.remove(name), None);
        }
        assert!(matches!(children, Children::Few(ref few) if few.capacity() == 0));
        assert!(children.is_empty());
    }
}
