//! What the views a connection's statements name read, as its database's
//! catalog said, kept for a while: both proxies look views up before they
//! decide a statement a deny or review rule on tables applies to
//! ([`crate::ViewReads`]), and most statements name the same few relations.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The relations each name reads, for the names that are views.
pub type Found = HashMap<String, Arc<[String]>>;

/// By connection, then by the name as a statement writes it (looked up
/// without making a key): what is known of the view of that name (`None`
/// if it is not one), and when the database said so.
type Known<V> = HashMap<String, HashMap<String, (Instant, Option<V>)>>;

/// What views are, per connection (`Known`), for a while: by default the
/// relations each reads (`V`, as the proxies' table rules need it).
#[derive(Debug)]
pub struct ViewCache<V = Arc<[String]>> {
    known: Mutex<Known<V>>,
    ttl: Duration,
    /// Names kept per connection, at most (its entries are dropped when
    /// full).
    max: usize,
}

/// Answers trusted for a minute (a view changed outside Gatehouse is seen
/// after that), at most 50,000 names per connection.
impl<V> Default for ViewCache<V> {
    fn default() -> Self {
        Self::new(Duration::from_secs(60), 50_000)
    }
}

impl<V> ViewCache<V> {
    /// Answers trusted for `ttl`; at most `max` names per connection.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            known: Mutex::new(HashMap::new()),
            ttl,
            max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Known<V>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets what the connection's views are: a statement that may
    /// define or replace one is running there.
    pub fn forget(&self, connection: &str) {
        self.lock().remove(connection);
    }
}

impl<V: Clone> ViewCache<V> {
    /// What is known of each of `names` on `connection` that is a view.
    /// Names not known (or known too long ago) are asked of `fetch`
    /// together, which answers for the views among them (names it leaves
    /// out are not views); its error is the look-up's.
    pub async fn look_up<F, Fut>(
        &self,
        connection: &str,
        names: &[String],
        fetch: F,
    ) -> Result<HashMap<String, V>, String>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<HashMap<String, V>, String>>,
    {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.lock();
            let known = cache.get(connection);
            for name in names {
                match known
                    .and_then(|k| k.get(name))
                    .filter(|(at, _)| at.elapsed() < self.ttl)
                {
                    Some((_, view)) => {
                        if let Some(v) = view {
                            out.insert(name.clone(), v.clone());
                        }
                    }
                    None => missing.push(name.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let mut fresh = fetch(missing.clone()).await?;
        let mut cache = self.lock();
        let known = cache.entry(connection.to_string()).or_default();
        if known.len() + missing.len() > self.max {
            known.clear();
        }
        let now = Instant::now();
        for name in missing {
            let view = fresh.remove(&name);
            known.insert(name.clone(), (now, view.clone()));
            if let Some(v) = view {
                out.insert(name, v);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(pairs: &[(&str, &[&str])]) -> Found {
        pairs
            .iter()
            .map(|(n, r)| (n.to_string(), r.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn names_are_asked_once_per_connection_until_forgotten_or_stale() {
        let cache: ViewCache = ViewCache::new(Duration::from_secs(60), 100);
        let asked = Mutex::new(Vec::new());
        let fetch = |missing: Vec<String>| {
            asked.lock().unwrap().push(missing);
            async { Ok(answers(&[("v", &["public.t"])])) }
        };
        let found = cache
            .look_up("a", &names(&["v", "t"]), fetch)
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(&*found["v"], ["public.t".to_string()]);
        // Known now, the view and the name that is not one.
        let found = cache
            .look_up("a", &names(&["t", "v"]), fetch)
            .await
            .unwrap();
        assert_eq!(found.keys().collect::<Vec<_>>(), ["v"]);
        // Another connection asks for itself.
        cache.look_up("b", &names(&["v"]), fetch).await.unwrap();
        cache.forget("a");
        cache.look_up("a", &names(&["t"]), fetch).await.unwrap();
        assert_eq!(
            *asked.lock().unwrap(),
            [names(&["v", "t"]), names(&["v"]), names(&["t"])]
        );

        let stale: ViewCache = ViewCache::new(Duration::ZERO, 100);
        stale.look_up("a", &names(&["v"]), fetch).await.unwrap();
        stale.look_up("a", &names(&["v"]), fetch).await.unwrap();
        assert_eq!(asked.lock().unwrap().len(), 5);
    }

    #[tokio::test]
    async fn a_failed_look_up_is_the_answer_and_is_not_kept() {
        let cache: ViewCache = ViewCache::new(Duration::from_secs(60), 100);
        let err = cache
            .look_up("a", &names(&["v"]), |_| async { Err("down".to_string()) })
            .await;
        assert_eq!(err, Err("down".to_string()));
        let found = cache
            .look_up("a", &names(&["v"]), |_| async {
                Ok(answers(&[("v", &["s.t"])]))
            })
            .await
            .unwrap();
        assert!(found.contains_key("v"));
    }
}
