//! Session places shared by replicas: a connection's `max_sessions` counts
//! the sessions open on every replica of a shared store, not on one. Each
//! place is a row (connection, place number) whose primary key makes
//! taking one atomic without a lock: two replicas taking the same number
//! at once, one gets it and the other tries the next. A replica keeps its
//! rows alive ([`Store::renew_session_places`]); those of a replica that
//! stopped without giving them back expire.

use sqlx::Row;

use crate::{Store, StoreError};

/// One session place taken in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPlace {
    pub connection: String,
    pub place: i64,
    /// Who holds it (random per session), so that giving back an expired
    /// place another session has since taken does nothing.
    pub holder: String,
}

/// Taking a place: how often it is tried again after another replica took
/// the number chosen at the same moment.
const TRIES: usize = 8;

impl Store {
    /// Takes one of `max` places of `connection` for session `holder` of
    /// replica `replica`, held until `expires_at` (Unix ms) unless renewed.
    /// `Ok(Err(open))` when all are taken (`open` places are).
    pub async fn take_session_place(
        &self,
        connection: &str,
        max: u64,
        holder: &str,
        replica: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<Result<SessionPlace, u64>, StoreError> {
        sqlx::query("DELETE FROM session_places WHERE connection = $1 AND expires_at < $2")
            .bind(connection)
            .bind(now)
            .execute(&self.pool)
            .await?;
        for _ in 0..TRIES {
            let rows = sqlx::query("SELECT place FROM session_places WHERE connection = $1")
                .bind(connection)
                .fetch_all(&self.pool)
                .await?;
            let mut taken = rows
                .iter()
                .map(|r| r.try_get::<i64, _>(0))
                .collect::<Result<Vec<_>, _>>()?;
            let open = u64::try_from(taken.len()).unwrap_or(u64::MAX);
            if open >= max {
                return Ok(Err(open));
            }
            taken.sort_unstable();
            // The lowest free number below max (one is, as fewer are taken).
            let mut place = 0i64;
            for t in taken {
                if t == place {
                    place += 1;
                } else if t > place {
                    break;
                }
            }
            let done = sqlx::query(
                "INSERT INTO session_places (connection, place, holder, replica, expires_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (connection, place) DO NOTHING",
            )
            .bind(connection)
            .bind(place)
            .bind(holder)
            .bind(replica)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 1 {
                return Ok(Ok(SessionPlace {
                    connection: connection.to_string(),
                    place,
                    holder: holder.to_string(),
                }));
            }
        }
        Err(StoreError::Corrupt(format!(
            "no place of connection {connection} could be taken in {TRIES} tries (too many sessions starting at once)"
        )))
    }

    /// Gives a place back.
    pub async fn give_back_session_place(&self, place: &SessionPlace) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM session_places WHERE connection = $1 AND place = $2 AND holder = $3",
        )
        .bind(&place.connection)
        .bind(place.place)
        .bind(&place.holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Keeps replica `replica`'s places until `expires_at` (Unix ms); how
    /// many it holds.
    pub async fn renew_session_places(
        &self,
        replica: &str,
        expires_at: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE session_places SET expires_at = $1 WHERE replica = $2")
            .bind(expires_at)
            .bind(replica)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
