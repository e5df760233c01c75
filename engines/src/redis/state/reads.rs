//! The narrow state traits on Redis: each call one command, one pipeline
//! or one script.

use super::*;

#[async_trait]
impl AccountStore for RedisState {
    async fn create_account(
        &self,
        username: &str,
        password_hash: &str,
        display_name: &str,
    ) -> Result<Option<UserId>> {
        let id: u64 = self
            .create_account
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(username)
            .arg(password_hash)
            .arg(display_name)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok((id != 0).then_some(UserId(id)))
    }

    async fn account_by_name(&self, username: &str) -> Result<Option<Account>> {
        let id: Option<u64> = redis::cmd("GET")
            .arg(self.key(format!("n:{username}")))
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        match id {
            Some(id) => self.account(UserId(id)).await,
            None => Ok(None),
        }
    }

    async fn account(&self, user: UserId) -> Result<Option<Account>> {
        type Row = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let (name, hash, display, about, avatar): Row = redis::cmd("HMGET")
            .arg(self.key(format!("a:{user}")))
            .arg("name")
            .arg("hash")
            .arg("display")
            .arg("about")
            .arg("avatar")
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(name.map(|username| Account {
            user_id: user,
            username,
            password_hash: hash.unwrap_or_default(),
            display_name: display.unwrap_or_default(),
            about: about.unwrap_or_default(),
            avatar_media_id: avatar.filter(|a| !a.is_empty()),
        }))
    }

    async fn new_device(&self, user: UserId) -> Result<DeviceId> {
        let id: u64 = redis::cmd("HINCRBY")
            .arg(self.key(format!("u:{user}")))
            .arg("dev")
            .arg(1)
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(DeviceId(id))
    }

    async fn devices_issued(&self, user: UserId) -> Result<u64> {
        Ok(self
            .hget(self.key(format!("u:{user}")), "dev".to_owned())
            .await?
            .unwrap_or(0))
    }

    async fn device_session(
        &self,
        user: UserId,
        device: DeviceId,
    ) -> Result<Option<DeviceSession>> {
        let v: Option<String> = redis::cmd("HGET")
            .arg(self.key(format!("ds:{user}")))
            .arg(device.0)
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(v.as_deref().and_then(DeviceSession::decode))
    }

    async fn device_sessions(&self, user: UserId) -> Result<Vec<(DeviceId, DeviceSession)>> {
        let all: Vec<(u64, String)> = redis::cmd("HGETALL")
            .arg(self.key(format!("ds:{user}")))
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        let mut out: Vec<(DeviceId, DeviceSession)> = all
            .into_iter()
            .filter_map(|(d, s)| Some((DeviceId(d), DeviceSession::decode(&s)?)))
            .collect();
        out.sort_by_key(|(d, _)| d.0);
        Ok(out)
    }

    async fn swap_device_session(
        &self,
        user: UserId,
        device: DeviceId,
        expected: Option<DeviceSession>,
        next: DeviceSession,
    ) -> Result<bool> {
        let written: i64 = self
            .swap_session
            .key(self.key(format!("ds:{user}")))
            .arg(device.0)
            .arg(expected.map(|e| e.encode()).unwrap_or_default())
            .arg(next.encode())
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(written == 1)
    }
}

#[async_trait]
impl PresenceStore for RedisState {
    async fn presence(&self, user: UserId) -> Result<Option<Presence>> {
        let (on, seen, upd): (Option<u8>, Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(self.key(format!("u:{user}")))
            .arg("on")
            .arg("seen")
            .arg("upd")
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        if on.is_none() && seen.is_none() {
            return Ok(None);
        }
        Ok(Some(Presence {
            online: on == Some(1),
            last_seen: seen.unwrap_or(0),
            updated: upd.unwrap_or(0),
        }))
    }

    async fn contacts(&self, user: UserId) -> Result<Vec<UserId>> {
        self.members(format!("c:{user}")).await
    }

    async fn watchers(&self, user: UserId) -> Result<Vec<UserId>> {
        self.members(format!("w:{user}")).await
    }

    async fn blocked(&self, user: UserId) -> Result<Vec<UserId>> {
        self.members(format!("bl:{user}")).await
    }

    async fn blocks(&self, user: UserId, other: UserId) -> Result<bool> {
        redis::cmd("SISMEMBER")
            .arg(self.key(format!("bl:{user}")))
            .arg(other.0)
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)
    }

    async fn privacy(&self, user: UserId) -> Result<Audience> {
        let code: Option<u8> = self
            .hget(self.key(format!("u:{user}")), "priv".into())
            .await?;
        Ok(crate::state::audience_of(code.unwrap_or(0)))
    }
}

#[async_trait]
impl ConversationStore for RedisState {
    async fn group(&self, group: GroupId) -> Result<Option<GroupState>> {
        let blob: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.key(format!("g:{group}")))
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        blob.map(|b| GroupState::decode(&b))
            .transpose()
            .map_err(|e| EngineError::State(format!("group {group}: {e}")))
    }

    async fn marks(&self, conversation: ConversationId, user: UserId) -> Result<Marks> {
        let (d, r): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.key(format!("m:{conversation}")))
            .arg(format!("{user}:d"))
            .arg(format!("{user}:r"))
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(Marks {
            delivered: unpad(d),
            read: unpad(r),
        })
    }

    async fn idem_get_many(&self, keys: Vec<(UserId, String)>) -> Result<Vec<Option<FirstSend>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for (u, k) in &keys {
            cmd.arg(self.key(format!("i:{u}:{k}")));
        }
        let v: Vec<Option<String>> = cmd.query_async(&mut self.con.clone()).await.map_err(err)?;
        // "msg_id conversation"; a mapping stored before conversations
        // were kept is the msg_id alone.
        Ok(v.into_iter()
            .map(|o| {
                let o = o?;
                let (id, conversation) = o.split_once(' ').unwrap_or((o.as_str(), ""));
                Some(FirstSend {
                    msg_id: MessageId(id.parse().ok()?),
                    conversation: conversation.parse().ok(),
                })
            })
            .collect())
    }

    async fn indexed(
        &self,
        conversation: ConversationId,
        msg_id: MessageId,
    ) -> Result<Option<Indexed>> {
        let v: Option<String> = redis::cmd("GET")
            .arg(self.key(format!("mi:{conversation}:{msg_id}")))
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(v.as_deref().and_then(Indexed::decode))
    }

    async fn groups_of(&self, user: UserId) -> Result<Vec<GroupId>> {
        let ids: Vec<u64> = redis::cmd("SMEMBERS")
            .arg(self.key(format!("ug:{user}")))
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(ids.into_iter().map(GroupId).collect())
    }
}

#[async_trait]
impl InboxStore for RedisState {
    async fn inbox_seq(&self, user: UserId) -> Result<u64> {
        Ok(self
            .hget(self.key(format!("u:{user}")), "seq".into())
            .await?
            .unwrap_or(0))
    }

    async fn trim_inbox(&self, user: UserId, through: u64) -> Result<u64> {
        let key = self.key(format!("in:{user}"));
        // The last row starting at or below `through` may be a run that
        // reaches past it: then the cut is just below that run.
        let last: Vec<Vec<u8>> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(through)
            .arg("-inf")
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(1)
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        let mut cut = through;
        if let Some(m) = last.first() {
            let (seq, value) = padded(m, "inbox member")?;
            if InboxEntry::from_value(seq, value).last_seq() > through {
                cut = seq.saturating_sub(1);
            }
        }
        redis::cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(cut)
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)
    }

    async fn expire_inbox(&self, before: u64) -> Result<u64> {
        let mut con = self.con.clone();
        let pattern = self.key("in:*".into());
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys) = self.scan(cursor, &pattern, 500).await?;
            for key in keys {
                // Seqs rise with time: the expired rows are a prefix.
                let oldest: Vec<Vec<u8>> = redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(255)
                    .query_async(&mut con)
                    .await
                    .map_err(err)?;
                let mut doomed = Vec::new();
                for m in &oldest {
                    let (seq, value) = padded(m, "inbox member")?;
                    let row = InboxEntry::from_value(seq, value);
                    match row.sent_at() {
                        Some(at) if at < before => doomed.push(m.clone()),
                        None if matches!(row, InboxEntry::Run { .. }) => {}
                        _ => break,
                    }
                }
                if !doomed.is_empty() {
                    let n: u64 = redis::cmd("ZREM")
                        .arg(&key)
                        .arg(doomed)
                        .query_async(&mut con)
                        .await
                        .map_err(err)?;
                    deleted += n;
                }
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    async fn inbox_first(&self, user: UserId) -> Result<Option<u64>> {
        let first: Vec<(Vec<u8>, f64)> = redis::cmd("ZRANGE")
            .arg(self.key(format!("in:{user}")))
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(first.first().map(|(_, score)| *score as u64))
    }

    async fn inbox_range(&self, user: UserId, after: u64, limit: usize) -> Result<Vec<InboxEntry>> {
        let key = self.key(format!("in:{user}"));
        // The row at or below `after` (a run may reach past it), then the rest.
        let (below, above): (Vec<Vec<u8>>, Vec<Vec<u8>>) = redis::pipe()
            .cmd("ZRANGE")
            .arg(&key)
            .arg(after)
            .arg("-inf")
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(1)
            .cmd("ZRANGE")
            .arg(&key)
            .arg(format!("({after}"))
            .arg("+inf")
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        let row = |m: Vec<u8>| {
            let (seq, value) = padded(&m, "inbox member")?;
            Ok(InboxEntry::from_value(seq, value))
        };
        let mut out = Vec::with_capacity(above.len() + 1);
        for m in below {
            let r = row(m)?;
            if r.last_seq() > after {
                out.push(r);
            }
        }
        for m in above.into_iter().take(limit - out.len().min(limit)) {
            out.push(row(m)?);
        }
        Ok(out)
    }

    async fn group_posts(
        &self,
        group: GroupId,
        from: MessageId,
        limit: usize,
    ) -> Result<Vec<(MessageId, Bytes)>> {
        let members: Vec<Vec<u8>> = redis::cmd("ZRANGE")
            .arg(self.key(format!("gp:{group}")))
            .arg(format!("[{}", pad(from)))
            .arg("+")
            .arg("BYLEX")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        members
            .into_iter()
            .map(|m| {
                let (id, message) = padded(&m, "group post")?;
                Ok((MessageId(id), Bytes::copy_from_slice(message)))
            })
            .collect()
    }

    async fn inbox_head(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> Result<Option<MessageId>> {
        let v: Option<String> = self
            .hget(
                self.key(format!("u:{user}")),
                format!("head:{conversation}"),
            )
            .await?;
        Ok(unpad(v))
    }

    async fn cursor(&self, user: UserId, device: DeviceId) -> Result<Option<u64>> {
        self.hget(self.key(format!("u:{user}")), format!("cur:{device}"))
            .await
    }

    async fn advance_cursor(&self, user: UserId, device: DeviceId, seq: u64) -> Result<()> {
        let _: i64 = self
            .cursor_max
            .key(self.key(format!("u:{user}")))
            .key(self.key(format!("a:{user}")))
            .arg(format!("cur:{device}"))
            .arg(seq)
            .arg(crate::state::ERASED)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(err)?;
        Ok(())
    }
}

#[async_trait]
impl JobStore for RedisState {
    async fn write(&self, ops: Vec<StateOp>) -> Result<()> {
        self.run_apply("", 0, None, 0, &ops).await.map(|_| ())
    }

    async fn apply(
        &self,
        job: &str,
        partition: u32,
        prev: Option<u64>,
        next_offset: u64,
        ops: Vec<StateOp>,
    ) -> Result<Applied> {
        match self
            .run_apply(job, partition, prev, next_offset, &ops)
            .await?
        {
            -1 => Ok(Applied::Written),
            -2 => Ok(Applied::Stale { committed: None }),
            committed => Ok(Applied::Stale {
                committed: Some(committed as u64),
            }),
        }
    }

    async fn job_offset(&self, job: &str, partition: u32) -> Result<Option<u64>> {
        self.hget(self.key(format!("j:{job}")), partition.to_string())
            .await
    }
}
