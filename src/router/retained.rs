//! The retained-message store: the last retained PUBLISH per topic, in a topic tree.

use super::children::Children;
use crate::protocol::topic::{validate_topic_filter, validate_topic_name};

const ROOT: u32 = 0;
/// Stack position meaning "everything below": the rest of the filter was `#`.
const SUBTREE: usize = usize::MAX;

#[derive(Debug)]
struct Node<M> {
    parent: u32,
    children: Children,
    message: Option<M>,
}

impl<M> Node<M> {
    fn new(parent: u32) -> Self {
        Self { parent, children: Children::default(), message: None }
    }
}

/// Retained messages by topic, one tree node per topic level.
///
/// A filter with a literal prefix (`site/7/+/temp`) visits only the subtree under that
/// prefix; `#` visits every topic below its level. `M` is the caller's message (one that
/// carries its topic and shares its payload, such as a decoded PUBLISH over `Bytes`).
#[derive(Debug)]
pub struct RetainedStore<M> {
    nodes: Vec<Node<M>>,
    free: Vec<u32>,
    len: usize,
}

impl<M> Default for RetainedStore<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> RetainedStore<M> {
    /// An empty store.
    pub fn new() -> Self {
        Self { nodes: vec![Node::new(ROOT)], free: Vec::new(), len: 0 }
    }

    /// Retains `message` for `topic`; returns the message it replaces.
    pub fn set(&mut self, topic: &str, message: M) -> Option<M> {
        debug_assert!(validate_topic_name(topic).is_ok(), "invalid topic {topic:?}");
        let mut index = ROOT;
        for level in topic.split('/') {
            index = match self.nodes[index as usize].children.get(level) {
                Some(child) => child,
                None => {
                    let child = self.alloc(index);
                    self.nodes[index as usize].children.insert(level, child);
                    child
                }
            };
        }
        let old = self.nodes[index as usize].message.replace(message);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Forgets the message retained for `topic` (an empty retained PUBLISH); returns it.
    pub fn remove(&mut self, topic: &str) -> Option<M> {
        let mut index = self.find(topic)?;
        let message = self.nodes[index as usize].message.take()?;
        self.len -= 1;
        // Prune upwards; the levels come off the end of the topic.
        let mut levels = topic.rsplit('/');
        while index != ROOT {
            let node = &self.nodes[index as usize];
            if node.message.is_some() || !node.children.is_empty() {
                break;
            }
            let parent = node.parent;
            let Some(level) = levels.next() else {
                debug_assert!(false, "node {index} deeper than its topic {topic:?}");
                break;
            };
            self.nodes[parent as usize].children.remove(level);
            self.nodes[index as usize] = Node::new(ROOT);
            self.free.push(index);
            index = parent;
        }
        Some(message)
    }

    /// The message retained for `topic`.
    pub fn get(&self, topic: &str) -> Option<&M> {
        self.nodes[self.find(topic)? as usize].message.as_ref()
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no message is retained.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Live tree nodes, the root included (1 when empty).
    pub fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// Calls `f` with every retained message whose topic matches `filter` (a valid,
    /// non-shared filter), honouring the `$` rule [MQTT-4.7.2-1].
    ///
    /// Runs on SUBSCRIBE, not per PUBLISH, so its stack is an ordinary `Vec`.
    pub fn for_each_match(&self, filter: &str, mut f: impl FnMut(&M)) {
        debug_assert!(validate_topic_filter(filter).is_ok(), "invalid filter {filter:?}");
        let done = filter.len() + 1;
        let mut stack = vec![(ROOT, 0usize)];
        while let Some((index, position)) = stack.pop() {
            let node = &self.nodes[index as usize];
            if position == SUBTREE || position == done {
                if let Some(message) = &node.message {
                    f(message);
                }
                if position == SUBTREE {
                    node.children.for_each(|_, child| stack.push((child, SUBTREE)));
                }
                continue;
            }
            let rest = &filter[position..];
            let (level, next) = match rest.find('/') {
                Some(slash) => (&rest[..slash], position + slash + 1),
                None => (rest, done),
            };
            // [MQTT-4.7.2-1] Wildcards at the first level skip `$` topics.
            let skip_dollar = index == ROOT;
            match level {
                "#" => {
                    // `a/#` matches `a` itself.
                    if let Some(message) = &node.message {
                        f(message);
                    }
                    node.children.for_each(|key, child| {
                        if !(skip_dollar && key.starts_with('$')) {
                            stack.push((child, SUBTREE));
                        }
                    });
                }
                "+" => node.children.for_each(|key, child| {
                    if !(skip_dollar && key.starts_with('$')) {
                        stack.push((child, next));
                    }
                }),
                _ => {
                    if let Some(child) = node.children.get(level) {
                        stack.push((child, next));
                    }
                }
            }
        }
    }

    fn find(&self, topic: &str) -> Option<u32> {
        let mut index = ROOT;
        for level in topic.split('/') {
            index = self.nodes[index as usize].children.get(level)?;
        }
        Some(index)
    }

    fn alloc(&mut self, parent: u32) -> u32 {
        if let Some(index) = self.free.pop() {
            self.nodes[index as usize] = Node::new(parent);
            return index;
        }
        let index = u32::try_from(self.nodes.len()).expect("retained node count overflows u32");
        self.nodes.push(Node::new(parent));
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(topics: &[&str]) -> RetainedStore<String> {
        let mut store = RetainedStore::new();
        for topic in topics {
            store.set(topic, topic.to_string());
        }
        store
    }

    fn matching(store: &RetainedStore<String>, filter: &str) -> Vec<String> {
        let mut found = Vec::new();
        store.for_each_match(filter, |m| found.push(m.clone()));
        found.sort();
        found
    }

    #[test]
    fn set_get_replace_and_remove() {
        let mut store = RetainedStore::new();
        assert!(store.is_empty());
        assert_eq!(store.set("a/b", 1), None);
        assert_eq!(store.set("a/b", 2), Some(1));
        assert_eq!(store.set("a", 3), None);
        assert_eq!(store.len(), 2);
        assert_eq!(store.get("a/b"), Some(&2));
        assert_eq!(store.get("a"), Some(&3));
        assert_eq!(store.get("a/b/c"), None);
        assert_eq!(store.get("b"), None);
        assert_eq!(store.remove("a/b/c"), None);
        assert_eq!(store.remove("a"), Some(3));
        assert_eq!(store.remove("a"), None);
        assert_eq!(store.get("a/b"), Some(&2));
        assert_eq!(store.remove("a/b"), Some(2));
        assert!(store.is_empty());
    }

    #[test]
    fn removing_every_message_prunes_the_tree() {
        let topics = ["a/b/c", "a/b", "a//", "/x", "$SYS/up", "a/b/c/d/e"];
        let mut store = store(&topics);
        assert!(store.node_count() > 1);
        for topic in topics {
            assert_eq!(store.remove(topic).as_deref(), Some(topic));
        }
        assert_eq!(store.node_count(), 1);
        // Freed nodes are reused, not appended.
        let nodes_len = store.nodes.len();
        for topic in topics {
            store.set(topic, topic.to_string());
        }
        assert_eq!(store.nodes.len(), nodes_len);
    }

    #[test]
    fn matches_retained_topics_against_filters() {
        let store = store(&["a", "a/b", "a/c", "a/b/c", "a/", "/a", "b/b", "$SYS/up", "a/$x"]);
        let cases: &[(&str, &[&str])] = &[
            ("a", &["a"]),
            ("a/b", &["a/b"]),
            ("a/+", &["a/", "a/$x", "a/b", "a/c"]),
            ("+/b", &["a/b", "b/b"]),
            ("a/#", &["a", "a/", "a/$x", "a/b", "a/b/c", "a/c"]),
            ("a/b/#", &["a/b", "a/b/c"]),
            ("+/+/+", &["a/b/c"]),
            ("+/+/#", &["/a", "a/", "a/$x", "a/b", "a/b/c", "a/c", "b/b"]),
            ("/+", &["/a"]),
            ("+", &["a"]),
            ("#", &["/a", "a", "a/", "a/$x", "a/b", "a/b/c", "a/c", "b/b"]),
            ("$SYS/#", &["$SYS/up"]),
            ("$SYS/+", &["$SYS/up"]),
            ("+/up", &[]),
            ("c/#", &[]),
        ];
        for (filter, expected) in cases {
            assert_eq!(matching(&store, filter), *expected, "filter {filter:?}");
        }
    }
}
