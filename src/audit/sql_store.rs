//! The body of [`AuditStore`](super::store::AuditStore), written once and instantiated for
//! SQLite and Postgres by [`audit_store_impl`]. The SQL is portable (both databases accept
//! `ON CONFLICT DO NOTHING`, `excluded.`, `||`, `LOWER`, `LIKE .. ESCAPE`); only the
//! placeholder style differs, and [`super::store::Sql`] takes care of it. A macro rather than
//! generics over `sqlx::Database` because sqlx's executor bounds make generic code far longer
//! than the thing it abstracts. Appends are each store's own (`append_rows`): SQLite writes
//! through the writer's own connection, Postgres through its pool.

/// Implements `AuditStore` for `$store` (a struct with a `pool: sqlx::Pool<$db>` field).
macro_rules! audit_store_impl {
    ($store:ty, $db:ty, $dollar:expr) => {
        fn bound<'q>(
            sql: &'q $crate::audit::store::Sql,
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
            use $crate::audit::store::Bind;
            let mut query = sqlx::query(&sql.text);
            for bind in &sql.binds {
                query = match bind {
                    Bind::Text(text) => query.bind(text.as_deref()),
                    Bind::Int(n) => query.bind(*n),
                };
            }
            query
        }

        fn rows_to_events(
            rows: &[<$db as sqlx::Database>::Row],
        ) -> Result<Vec<$crate::audit::event::StoredEvent>, sqlx::Error> {
            rows.iter().map($crate::audit::store::from_row).collect()
        }

        impl $crate::audit::store::AuditStore for $store {
            async fn append_batch(
                &self,
                events: &[$crate::audit::event::StoredEvent],
            ) -> Result<(), $crate::audit::store::StoreError> {
                // Each store writes its own way: see `append_rows` beside the store.
                self.append_rows(events).await
            }

            async fn chain_head(
                &self,
                instance: &str,
            ) -> Result<Option<(i64, String)>, $crate::audit::store::StoreError> {
                use $crate::audit::store::Sql;
                let mut sql = Sql::new(
                    "SELECT seq, hash FROM audit_events WHERE instance = ",
                    $dollar,
                );
                sql.text(instance).push(" ORDER BY seq DESC LIMIT 1");
                let last = bound(&sql).fetch_optional(&self.pool).await?;
                let mut sql = Sql::new(
                    "SELECT seq, hash FROM audit_checkpoints WHERE instance = ",
                    $dollar,
                );
                sql.text(instance);
                let checkpoint = bound(&sql).fetch_optional(&self.pool).await?;
                let pair = |row: Option<<$db as sqlx::Database>::Row>| -> Result<Option<(i64, String)>, sqlx::Error> {
                    match row {
                        Some(row) => Ok(Some((sqlx::Row::try_get(&row, 0)?, sqlx::Row::try_get(&row, 1)?))),
                        None => Ok(None),
                    }
                };
                let (last, checkpoint) = (pair(last)?, pair(checkpoint)?);
                Ok(match (last, checkpoint) {
                    (Some(a), Some(b)) => Some(if a.0 >= b.0 { a } else { b }),
                    (a, b) => a.or(b),
                })
            }

            async fn query(
                &self,
                filter: &$crate::audit::store::AuditFilter,
                cursor: Option<&$crate::audit::store::Cursor>,
                limit: u32,
            ) -> Result<$crate::audit::store::Page, $crate::audit::store::StoreError> {
                let sql = $crate::audit::store::query_sql(filter, cursor, limit, $dollar);
                let rows = bound(&sql).fetch_all(&self.pool).await?;
                Ok($crate::audit::store::into_page(rows_to_events(&rows)?, limit))
            }

            async fn verify_page(
                &self,
                after: Option<(&str, i64)>,
                limit: u32,
            ) -> Result<Vec<$crate::audit::event::StoredEvent>, $crate::audit::store::StoreError>
            {
                use $crate::audit::store::{Bind, Sql, column_list};
                let mut sql = Sql::new(
                    &format!("SELECT {} FROM audit_events", column_list()),
                    $dollar,
                );
                if let Some((instance, seq)) = after {
                    sql.push(" WHERE instance > ")
                        .text(instance)
                        .push(" OR (instance = ")
                        .text(instance)
                        .push(" AND seq > ")
                        .bind(Bind::Int(Some(seq)))
                        .push(")");
                }
                sql.push(" ORDER BY instance, seq LIMIT ")
                    .bind(Bind::Int(Some(i64::from(limit))));
                let rows = bound(&sql).fetch_all(&self.pool).await?;
                Ok(rows_to_events(&rows)?)
            }

            async fn checkpoints(
                &self,
            ) -> Result<Vec<$crate::audit::store::Checkpoint>, $crate::audit::store::StoreError>
            {
                let rows = sqlx::query("SELECT instance, seq, hash FROM audit_checkpoints")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::audit::store::Checkpoint {
                            instance: sqlx::Row::try_get(row, 0)?,
                            seq: sqlx::Row::try_get(row, 1)?,
                            hash: sqlx::Row::try_get(row, 2)?,
                            deleted: 0,
                        })
                    })
                    .collect()
            }

            async fn apply_retention(
                &self,
                cutoff: &str,
            ) -> Result<Vec<$crate::audit::store::Checkpoint>, $crate::audit::store::StoreError>
            {
                use $crate::audit::store::{Bind, Checkpoint, Sql};
                let mut tx = self.pool.begin().await?;
                let mut sql = Sql::new(
                    "SELECT instance, MAX(seq) FROM audit_events WHERE ts < ",
                    $dollar,
                );
                sql.text(cutoff).push(" GROUP BY instance ORDER BY instance");
                let heads = bound(&sql).fetch_all(&mut *tx).await?;
                let mut done = Vec::new();
                for row in heads {
                    let instance: String = sqlx::Row::try_get(&row, 0)?;
                    let seq: i64 = sqlx::Row::try_get(&row, 1)?;
                    let mut sql = Sql::new(
                        "SELECT hash, ts FROM audit_events WHERE instance = ",
                        $dollar,
                    );
                    sql.text(&instance).push(" AND seq = ").bind(Bind::Int(Some(seq)));
                    let last = bound(&sql).fetch_one(&mut *tx).await?;
                    let hash: String = sqlx::Row::try_get(&last, 0)?;
                    let ts: String = sqlx::Row::try_get(&last, 1)?;
                    // A chain prefix, never a hole: events are deleted up to the newest old
                    // one, so the next remaining event links to the checkpoint.
                    let mut sql =
                        Sql::new("DELETE FROM audit_events WHERE instance = ", $dollar);
                    sql.text(&instance).push(" AND seq <= ").bind(Bind::Int(Some(seq)));
                    let deleted = bound(&sql).execute(&mut *tx).await?.rows_affected();
                    let mut sql = Sql::new(
                        "INSERT INTO audit_checkpoints (instance, seq, hash, ts) VALUES (",
                        $dollar,
                    );
                    sql.text(&instance)
                        .push(", ")
                        .bind(Bind::Int(Some(seq)))
                        .push(", ")
                        .text(&hash)
                        .push(", ")
                        .text(&ts)
                        .push(
                            ") ON CONFLICT (instance) DO UPDATE SET seq = excluded.seq, \
                             hash = excluded.hash, ts = excluded.ts",
                        );
                    bound(&sql).execute(&mut *tx).await?;
                    done.push(Checkpoint {
                        instance,
                        seq,
                        hash,
                        deleted,
                    });
                }
                tx.commit().await?;
                Ok(done)
            }

            async fn ping(&self) -> Result<(), $crate::audit::store::StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}

pub(crate) use audit_store_impl;
