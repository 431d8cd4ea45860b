//! One conformance suite, two backends: every test below runs against a fresh PostgreSQL
//! schema (at `DATABASE_URL`) and a fresh SQLite file. PostgreSQL being unreachable fails
//! the PostgreSQL half; nothing is skipped.

// The suite's helpers are not `#[test]` fns, so clippy's test allowance does not reach them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use parley_domain::{AuditAction, AuditTarget, Emoji, Reason};
use parley_domain::{
    ClientMsgId, MessageBody, MessageId, Role, RoomId, RoomKind, RoomName, Timestamp, Topic, User,
    UserId, UserName,
};
use parley_store::testing::TestDb;
use parley_store::{
    AuditQuery, Backend, HistoryQuery, NewAuditEntry, NewMessage, NewRoom, NewUser, ReactionAdded,
    RoomListQuery, RoomPage, RoomScope, Store, StoreError, StoreOptions, UserQuery,
};

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = parley_store::testing::TestDb::postgres().await.expect("PostgreSQL test database");
                    assert_eq!(db.backend(), parley_store::Backend::Postgres);
                    super::$name(&db).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = parley_store::testing::TestDb::sqlite().await.expect("SQLite test database");
                    assert_eq!(db.backend(), parley_store::Backend::Sqlite);
                    super::$name(&db).await;
                }
            )*
        }
    };
}

conformance!(
    search_finds_every_stored_message_edited_or_not_and_never_a_deleted_one,
    migrations_rerun_and_ping,
    users_are_created_found_and_deleted,
    rooms_are_created_renamed_and_deleted,
    direct_rooms_are_get_or_create,
    memberships_are_added_and_removed,
    room_lists_show_visibility_roles_and_unread_counts,
    room_lists_page_by_name_and_clamp_their_size,
    room_list_paging_survives_rooms_coming_and_going,
    room_lists_split_my_rooms_from_the_public_directory,
    room_lists_filter_by_name_prefix,
    read_markers_only_move_forward,
    appends_are_idempotent_on_client_id,
    concurrent_retries_store_one_message,
    history_pages_by_cursor,
    edit_and_delete_need_author_or_staff,
    revoked_tokens_are_checked_and_pruned,
    deleting_a_user_cascades,
    batched_appends_keep_order_and_idempotency,
    a_bad_message_fails_alone_in_a_batch,
    the_batcher_groups_concurrent_appends,
    the_batcher_keeps_each_group_in_order,
    external_identities_link_accounts,
    external_identities_link_to_accounts_by_email,
    stale_guests_are_pruned_and_their_messages_kept,
    a_reader_paging_forward_misses_nothing_under_concurrent_appends,
    a_reader_paging_forward_misses_nothing_under_batched_appends,
    a_reader_paging_forward_misses_nothing_under_mixed_appends,
    the_audit_log_keeps_actions_and_filters_them,
    staff_find_accounts_by_name_or_email,
    accounts_are_deactivated_and_their_token_epoch_raised,
    an_erased_account_keeps_its_messages,
    default_rooms_are_ensured_and_joined,
    run_time_settings_are_stored,
    cli_audit_entries_have_no_actor_id,
    room_bans_end_membership_and_hide_the_room,
    room_mutes_expire_and_are_lifted,
    rooms_are_made_read_only_and_owners_counted,
    a_moderator_deletes_anyones_message,
    replies_are_stored_and_previewed_in_history,
    reactions_are_unique_counted_limited_and_cascade,
    room_lists_carry_the_newest_live_message,
    a_room_and_a_standing_are_read_together_as_apart,
    a_member_added_unless_banned_is_not_added_when_banned,
    account_reads_for_auth_see_every_change_at_once,
);

async fn user(s: &Store, name: &str) -> User {
    s.create_user(&NewUser {
        username: UserName::parse(name).unwrap(),
        email: None,
        display_name: None,
        password_hash: format!("hash-of-{name}"),
        is_staff: false,
        is_guest: false,
    })
    .await
    .unwrap()
}

async fn room(s: &Store, name: &str, kind: RoomKind, creator: UserId) -> parley_domain::Room {
    s.create_room(&NewRoom {
        name: RoomName::parse(name).unwrap(),
        kind,
        creator,
        topic: Topic::default(),
    })
    .await
    .unwrap()
}

fn msg(
    room: &parley_domain::Room,
    sender: &User,
    body: &str,
    client_id: Option<&str>,
) -> NewMessage {
    NewMessage {
        room_id: room.id,
        room: room.name.clone(),
        sender_id: sender.id,
        sender: sender.username.clone(),
        sender_display_name: None,
        sender_is_guest: sender.is_guest,
        body: MessageBody::parse(body).unwrap(),
        client_id: client_id.map(|c| ClientMsgId::parse(c).unwrap()),
        reply_to: None,
        mentions: Vec::new(),
    }
}

async fn post(
    s: &Store,
    room: &parley_domain::Room,
    sender: &User,
    body: &str,
) -> parley_domain::Message {
    let appended = s
        .append_message(&msg(room, sender, body, None))
        .await
        .unwrap();
    assert!(appended.created);
    appended.message
}

async fn migrations_rerun_and_ping(s: &Store) {
    s.ping().await.unwrap();
    // Start-up runs migrations every time: a second run finds nothing to do.
    s.migrate().await.unwrap();
    s.ping().await.unwrap();
}

async fn users_are_created_found_and_deleted(s: &Store) {
    let before = Timestamp::now();
    let alice = s
        .create_user(&NewUser {
            username: UserName::parse("Alice").unwrap(),
            email: Some(parley_domain::Email::parse("alice@example.com").unwrap()),
            display_name: None,
            password_hash: "h1".into(),
            is_staff: true,
            is_guest: false,
        })
        .await
        .unwrap();
    assert_eq!(alice.username.as_str(), "alice");
    assert_eq!(
        alice.email.as_ref().map(|e| e.as_str()),
        Some("alice@example.com")
    );
    assert!(alice.is_staff);
    assert!(alice.joined_at >= before);
    assert_eq!(alice.last_login, None);

    let dup = s
        .create_user(&NewUser {
            username: UserName::parse("ALICE").unwrap(),
            email: None,
            display_name: None,
            password_hash: "h2".into(),
            is_staff: false,
            is_guest: false,
        })
        .await;
    assert!(
        matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("alice")),
        "{dup:?}"
    );

    assert_eq!(s.user_by_id(alice.id).await.unwrap(), alice);
    assert_eq!(s.user_by_name(&alice.username).await.unwrap(), alice);
    let creds = s.credentials(&alice.username).await.unwrap();
    assert_eq!(creds.password_hash, "h1");
    assert!(
        !format!("{creds:?}").contains("h1"),
        "Debug must hide the hash"
    );

    let at = Timestamp(before.millis() + 5);
    let logged = s.record_login(alice.id, at).await.unwrap();
    assert_eq!(logged.last_login, Some(at));
    s.set_password_hash(alice.id, "h3").await.unwrap();
    assert_eq!(
        s.credentials(&alice.username).await.unwrap().password_hash,
        "h3"
    );
    assert!(!s.set_staff(alice.id, false).await.unwrap().is_staff);

    let nobody = UserName::parse("nobody").unwrap();
    assert!(matches!(
        s.user_by_name(&nobody).await,
        Err(StoreError::NotFound("user"))
    ));
    assert!(matches!(
        s.user_by_id(UserId(999_999)).await,
        Err(StoreError::NotFound("user"))
    ));
    assert!(matches!(
        s.record_login(UserId(999_999), at).await,
        Err(StoreError::NotFound("user"))
    ));

    s.delete_user(alice.id).await.unwrap();
    assert!(matches!(
        s.user_by_id(alice.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.delete_user(alice.id).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn rooms_are_created_renamed_and_deleted(s: &Store) {
    let alice = user(s, "alice").await;
    let lobby = s
        .create_room(&NewRoom {
            name: RoomName::parse("Lobby").unwrap(),
            kind: RoomKind::Public,
            creator: alice.id,
            topic: Topic::parse("hello").unwrap(),
        })
        .await
        .unwrap();
    assert_eq!(lobby.name.as_str(), "lobby");
    assert_eq!(lobby.kind, RoomKind::Public);
    assert_eq!(lobby.creator, Some(alice.id));
    assert_eq!(lobby.topic.as_str(), "hello");
    // The creator owns it.
    let m = s.membership(lobby.id, alice.id).await.unwrap().unwrap();
    assert_eq!(m.role, Role::Owner);
    assert_eq!(m.last_read, None);

    let dup = s
        .create_room(&NewRoom {
            name: RoomName::parse("lobby").unwrap(),
            kind: RoomKind::Private,
            creator: alice.id,
            topic: Topic::default(),
        })
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let direct = s
        .create_room(&NewRoom {
            name: RoomName::parse("x").unwrap(),
            kind: RoomKind::Direct,
            creator: alice.id,
            topic: Topic::default(),
        })
        .await;
    assert!(matches!(direct, Err(StoreError::Invalid(_))), "{direct:?}");
    let dm_name = s
        .create_room(&NewRoom {
            name: RoomName::parse("dm.1.2").unwrap(),
            kind: RoomKind::Public,
            creator: alice.id,
            topic: Topic::default(),
        })
        .await;
    assert!(
        matches!(dm_name, Err(StoreError::Invalid(_))),
        "{dm_name:?}"
    );
    let orphan = s
        .create_room(&NewRoom {
            name: RoomName::parse("orphan").unwrap(),
            kind: RoomKind::Public,
            creator: UserId(999_999),
            topic: Topic::default(),
        })
        .await;
    assert!(matches!(orphan, Err(StoreError::NotFound(_))), "{orphan:?}");
    // The failed transaction left nothing behind.
    assert!(matches!(
        s.room_by_name(&RoomName::parse("orphan").unwrap()).await,
        Err(StoreError::NotFound("room"))
    ));

    assert_eq!(s.room_by_name(&lobby.name).await.unwrap(), lobby);
    assert_eq!(s.room_by_id(lobby.id).await.unwrap(), lobby);

    let other = room(s, "other", RoomKind::Private, alice.id).await;
    let renamed = s
        .rename_room(lobby.id, &RoomName::parse("hall").unwrap())
        .await
        .unwrap();
    assert_eq!(renamed.name.as_str(), "hall");
    assert_eq!(renamed.id, lobby.id);
    assert!(matches!(
        s.rename_room(lobby.id, &other.name).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.rename_room(lobby.id, &RoomName::parse("dm.3.4").unwrap())
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.rename_room(RoomId(999_999), &RoomName::parse("zzz").unwrap())
            .await,
        Err(StoreError::NotFound("room"))
    ));

    let topic = s
        .set_topic(lobby.id, &Topic::parse("new topic").unwrap())
        .await
        .unwrap();
    assert_eq!(topic.topic.as_str(), "new topic");
    assert!(matches!(
        s.set_topic(RoomId(999_999), &Topic::default()).await,
        Err(StoreError::NotFound("room"))
    ));

    post(s, &renamed, &alice, "hi").await;
    s.delete_room(lobby.id).await.unwrap();
    assert!(matches!(
        s.room_by_id(lobby.id).await,
        Err(StoreError::NotFound("room"))
    ));
    assert!(s.membership(lobby.id, alice.id).await.unwrap().is_none());
    assert!(
        s.history(lobby.id, &HistoryQuery::default())
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    assert!(matches!(
        s.delete_room(lobby.id).await,
        Err(StoreError::NotFound("room"))
    ));
}

async fn direct_rooms_are_get_or_create(s: &Store) {
    let a = user(s, "alice").await;
    let b = user(s, "bob").await;
    let room = s.direct_room(b.id, a.id).await.unwrap();
    let (low, high) = if a.id < b.id {
        (a.id, b.id)
    } else {
        (b.id, a.id)
    };
    assert_eq!(room.name.as_str(), format!("dm.{low}.{high}"));
    assert_eq!(room.kind, RoomKind::Direct);
    assert_eq!(s.direct_room(a.id, b.id).await.unwrap(), room);
    let members: Vec<UserId> = s
        .members(room.id)
        .await
        .unwrap()
        .iter()
        .map(|m| m.user_id)
        .collect();
    assert_eq!(members.len(), 2);
    assert!(members.contains(&a.id) && members.contains(&b.id));

    // Racing callers all get the one room.
    let c = user(s, "carol").await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            let (x, y) = if i % 2 == 0 {
                (a.id, c.id)
            } else {
                (c.id, a.id)
            };
            tokio::spawn(async move { s.direct_room(x, y).await })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(s.members(ids[0]).await.unwrap().len(), 2);

    assert!(matches!(
        s.direct_room(a.id, a.id).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.direct_room(a.id, UserId(999_999)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.add_member(room.id, c.id, Role::Member).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.rename_room(room.id, &RoomName::parse("renamed").unwrap())
            .await,
        Err(StoreError::Invalid(_))
    ));
}

async fn memberships_are_added_and_removed(s: &Store) {
    let a = user(s, "alice").await;
    let b = user(s, "bob").await;
    let r = room(s, "club", RoomKind::Private, a.id).await;
    assert!(!s.is_member(r.id, b.id).await.unwrap());
    let m = s.add_member(r.id, b.id, Role::Member).await.unwrap();
    assert_eq!((m.room_id, m.user_id, m.role), (r.id, b.id, Role::Member));
    // Joining twice is a no-op that returns the membership.
    assert_eq!(s.add_member(r.id, b.id, Role::Owner).await.unwrap(), m);
    assert!(s.is_member(r.id, b.id).await.unwrap());
    let members = s.members(r.id).await.unwrap();
    assert_eq!(
        members.iter().map(|m| m.user_id).collect::<Vec<_>>(),
        vec![a.id, b.id]
    );
    assert_eq!(
        s.set_role(r.id, b.id, Role::Owner).await.unwrap().role,
        Role::Owner
    );
    // With their names, in one query, in the same order.
    let named = s.members_named(r.id).await.unwrap();
    let named: Vec<(UserId, &str, Role)> = named
        .iter()
        .map(|(m, name)| (m.user_id, name.as_str(), m.role))
        .collect();
    assert_eq!(
        named,
        vec![(a.id, "alice", Role::Owner), (b.id, "bob", Role::Owner)]
    );
    assert!(s.members_named(RoomId(999_999)).await.unwrap().is_empty());

    s.remove_member(r.id, b.id).await.unwrap();
    assert!(!s.is_member(r.id, b.id).await.unwrap());
    assert!(matches!(
        s.remove_member(r.id, b.id).await,
        Err(StoreError::NotFound("membership"))
    ));
    assert!(matches!(
        s.set_role(r.id, b.id, Role::Member).await,
        Err(StoreError::NotFound("membership"))
    ));
    assert!(matches!(
        s.add_member(RoomId(999_999), b.id, Role::Member).await,
        Err(StoreError::NotFound("room"))
    ));
    assert!(matches!(
        s.add_member(r.id, UserId(999_999), Role::Member).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Every room `user` sees, by name: their rooms and the public directory, as one list.
async fn rooms_seen(s: &Store, user: UserId) -> Vec<parley_domain::RoomSummary> {
    let mut seen = Vec::new();
    for scope in [RoomScope::Member, RoomScope::Public] {
        for summary in s
            .room_page(user, &list_query(scope, Some(200)))
            .await
            .unwrap()
            .rooms
        {
            if !seen
                .iter()
                .any(|r: &parley_domain::RoomSummary| r.room.id == summary.room.id)
            {
                seen.push(summary);
            }
        }
    }
    seen.sort_by(|a, b| a.room.name.as_str().cmp(b.room.name.as_str()));
    seen
}

async fn room_lists_show_visibility_roles_and_unread_counts(s: &Store) {
    let a = user(s, "alice").await;
    let b = user(s, "bob").await;
    let c = user(s, "carol").await;
    let public = room(s, "agora", RoomKind::Public, a.id).await;
    let private = room(s, "backroom", RoomKind::Private, a.id).await;
    let hidden = room(s, "cellar", RoomKind::Private, c.id).await;
    let dm = s.direct_room(a.id, b.id).await.unwrap();
    s.add_member(private.id, b.id, Role::Member).await.unwrap();

    let m1 = post(s, &public, &a, "one").await;
    post(s, &public, &a, "two").await;
    let m3 = post(s, &public, &a, "three").await;
    post(s, &private, &a, "p1").await;
    post(s, &hidden, &c, "secret").await;
    post(s, &dm, &a, "hey bob").await;
    s.delete_message(m3.id, a.id).await.unwrap();

    // bob: public room (not a member), the private room and the dm; never carol's cellar.
    let list = rooms_seen(s, b.id).await;
    let names: Vec<&str> = list.iter().map(|r| r.room.name.as_str()).collect();
    assert_eq!(names, vec!["agora", "backroom", dm.name.as_str()]);
    let agora = &list[0];
    assert_eq!((agora.role, agora.unread), (None, 0));
    assert_eq!((list[1].role, list[1].unread), (Some(Role::Member), 1));
    assert_eq!((list[2].role, list[2].unread), (Some(Role::Member), 1));

    // alice: owner of agora with no read marker: everything but the tombstone is unread.
    let list = rooms_seen(s, a.id).await;
    let agora = list.iter().find(|r| r.room.id == public.id).unwrap();
    assert_eq!((agora.role, agora.unread), (Some(Role::Owner), 2));
    assert!(!list.iter().any(|r| r.room.id == hidden.id));
    s.set_read_marker(public.id, a.id, m1.id).await.unwrap();
    let list = rooms_seen(s, a.id).await;
    assert_eq!(
        list.iter().find(|r| r.room.id == public.id).unwrap().unread,
        1
    );

    // Who shares a room with whom: alice and bob (three rooms), not carol with either.
    assert!(s.share_a_room(a.id, b.id).await.unwrap());
    assert!(s.share_a_room(b.id, a.id).await.unwrap());
    assert!(!s.share_a_room(b.id, c.id).await.unwrap());
    assert!(!s.share_a_room(c.id, a.id).await.unwrap());

    // Joining a public room makes its history unread.
    s.add_member(public.id, b.id, Role::Member).await.unwrap();
    let list = rooms_seen(s, b.id).await;
    assert_eq!(list[0].unread, 2);
}

fn list_query(scope: RoomScope, limit: Option<u32>) -> RoomListQuery {
    RoomListQuery {
        scope,
        limit,
        ..RoomListQuery::default()
    }
}

fn names(page: &RoomPage) -> Vec<String> {
    page.rooms.iter().map(|r| r.room.name.to_string()).collect()
}

/// Every page of `query` for `user`, following `next`: the names of each page.
async fn all_pages(s: &Store, user: UserId, mut query: RoomListQuery) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    loop {
        let page = s.room_page(user, &query).await.unwrap();
        pages.push(names(&page));
        assert!(pages.len() < 1000, "paging does not end");
        match page.next {
            Some(next) => {
                assert_eq!(
                    Some(next.as_str()),
                    page.rooms.last().map(|r| r.room.name.as_str())
                );
                query.after = Some(next);
            }
            None => return pages,
        }
    }
}

async fn room_lists_page_by_name_and_clamp_their_size(s: &Store) {
    let a = user(s, "alice").await;
    let b = user(s, "bob").await;
    let total = 210;
    let mut expected: Vec<String> = Vec::new();
    for i in 0..total {
        let name = format!("room{i:03}");
        room(s, &name, RoomKind::Public, a.id).await;
        expected.push(name);
    }
    room(s, "zz-private", RoomKind::Private, a.id).await;

    // The default page, then the cap, then the floor.
    let page = s
        .room_page(b.id, &list_query(RoomScope::Public, None))
        .await
        .unwrap();
    assert_eq!(page.rooms.len(), RoomListQuery::DEFAULT_LIMIT as usize);
    assert_eq!(page.next.as_ref().map(|n| n.as_str()), Some("room099"));
    let page = s
        .room_page(b.id, &list_query(RoomScope::Public, Some(10_000)))
        .await
        .unwrap();
    assert_eq!(page.rooms.len(), RoomListQuery::MAX_LIMIT as usize);
    assert!(page.next.is_some());
    let page = s
        .room_page(b.id, &list_query(RoomScope::Public, Some(0)))
        .await
        .unwrap();
    assert_eq!(names(&page), vec!["room000"]);
    assert_eq!(page.next.as_ref().map(|n| n.as_str()), Some("room000"));

    // Pages of any size cover every room once, in the same order; only the last is short.
    let by_default = all_pages(s, b.id, list_query(RoomScope::Public, None)).await;
    assert_eq!(
        by_default.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![100, 100, 10]
    );
    for limit in [1, 37, 200] {
        let pages = all_pages(s, b.id, list_query(RoomScope::Public, Some(limit))).await;
        let (last, full) = pages.split_last().unwrap();
        assert!(full.iter().all(|p| p.len() == limit as usize));
        assert!(!last.is_empty() && last.len() <= limit as usize);
        assert_eq!(pages.concat(), by_default.concat(), "limit {limit}");
    }
    let mut sorted = by_default.concat();
    sorted.sort();
    assert_eq!(sorted, expected, "every public room once, no private one");

    // A room count that is a multiple of the page size ends with an empty page or none, never
    // with a repeat.
    let pages = all_pages(s, b.id, list_query(RoomScope::Public, Some(105))).await;
    assert_eq!(pages.concat(), by_default.concat());
    // A cursor past the end.
    let query = RoomListQuery {
        after: Some(RoomName::parse("zzz").unwrap()),
        ..list_query(RoomScope::Public, None)
    };
    let page = s.room_page(b.id, &query).await.unwrap();
    assert!(page.rooms.is_empty() && page.next.is_none());
}

async fn room_list_paging_survives_rooms_coming_and_going(s: &Store) {
    let a = user(s, "alice").await;
    let mut rooms = Vec::new();
    for i in 0..30 {
        rooms.push(room(s, &format!("r{i:02}"), RoomKind::Public, a.id).await);
    }
    // alice pages through her rooms, ten at a time, while rooms are created and deleted.
    let mut query = list_query(RoomScope::Member, Some(10));
    let mut seen: Vec<String> = Vec::new();
    let mut round = 0;
    loop {
        let page = s.room_page(a.id, &query).await.unwrap();
        seen.extend(names(&page));
        match round {
            // Behind the cursor (never shown now), ahead of it (shown), and one gone.
            0 => {
                room(s, "r00a", RoomKind::Public, a.id).await;
                room(s, "r15a", RoomKind::Private, a.id).await;
                s.delete_room(rooms[20].id).await.unwrap();
            }
            // The room the cursor names goes: the next page still starts right after it.
            1 => {
                let cursor = page.next.as_ref().unwrap();
                let gone = rooms.iter().find(|r| r.name == *cursor).unwrap();
                s.delete_room(gone.id).await.unwrap();
            }
            _ => {}
        }
        round += 1;
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    let unique: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no room twice: {seen:?}");
    for (i, r) in rooms.iter().enumerate() {
        let shown = seen.iter().any(|n| n == r.name.as_str());
        assert_eq!(shown, i != 20, "{}", r.name);
    }
    assert!(seen.iter().any(|n| n == "r15a"));
    assert!(!seen.iter().any(|n| n == "r00a"));
}

async fn room_lists_split_my_rooms_from_the_public_directory(s: &Store) {
    let a = user(s, "alice").await;
    let b = user(s, "bob").await;
    let c = user(s, "carol").await;
    let agora = room(s, "agora", RoomKind::Public, a.id).await;
    let bazaar = room(s, "bazaar", RoomKind::Public, c.id).await;
    let backroom = room(s, "backroom", RoomKind::Private, a.id).await;
    let cellar = room(s, "cellar", RoomKind::Private, c.id).await;
    let dm = s.direct_room(a.id, b.id).await.unwrap();
    s.add_member(backroom.id, b.id, Role::Member).await.unwrap();
    s.add_member(agora.id, b.id, Role::Member).await.unwrap();

    let m1 = post(s, &agora, &a, "one").await;
    post(s, &agora, &a, "two").await;
    post(s, &bazaar, &c, "elsewhere").await;
    post(s, &backroom, &a, "p1").await;
    post(s, &cellar, &c, "secret").await;
    post(s, &dm, &a, "hey bob").await;
    s.set_read_marker(agora.id, b.id, m1.id).await.unwrap();

    let summary = |page: &RoomPage| {
        page.rooms
            .iter()
            .map(|r| (r.room.name.to_string(), r.role, r.unread))
            .collect::<Vec<_>>()
    };
    // bob's rooms: every kind he belongs to, with unread counts; never carol's rooms.
    let mine = s
        .room_page(b.id, &list_query(RoomScope::Member, None))
        .await
        .unwrap();
    assert_eq!(
        summary(&mine),
        vec![
            ("agora".to_owned(), Some(Role::Member), 1),
            ("backroom".to_owned(), Some(Role::Member), 1),
            (dm.name.to_string(), Some(Role::Member), 1),
        ]
    );
    assert!(mine.next.is_none());
    // Paging one at a time gives the same, counts included.
    let mut query = list_query(RoomScope::Member, Some(1));
    let mut one_by_one = Vec::new();
    loop {
        let page = s.room_page(b.id, &query).await.unwrap();
        one_by_one.extend(summary(&page));
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    assert_eq!(one_by_one, summary(&mine));
    // The directory: public rooms only, his role and count where he is a member.
    let public = s
        .room_page(b.id, &list_query(RoomScope::Public, None))
        .await
        .unwrap();
    assert_eq!(
        summary(&public),
        vec![
            ("agora".to_owned(), Some(Role::Member), 1),
            ("bazaar".to_owned(), None, 0),
        ]
    );
    // carol owns bazaar: her count is its whole history; she is in no room of bob's.
    let carols = s
        .room_page(c.id, &list_query(RoomScope::Member, None))
        .await
        .unwrap();
    assert_eq!(
        summary(&carols),
        vec![
            ("bazaar".to_owned(), Some(Role::Owner), 1),
            ("cellar".to_owned(), Some(Role::Owner), 1),
        ]
    );
    // A user in no room has an empty list.
    let d = user(s, "dave").await;
    let none = s
        .room_page(d.id, &list_query(RoomScope::Member, None))
        .await
        .unwrap();
    assert!(none.rooms.is_empty() && none.next.is_none());
}

async fn room_lists_filter_by_name_prefix(s: &Store) {
    let a = user(s, "alice").await;
    for name in ["a_b", "a_bc", "axb", "a-b", "a.b", "ab", "b_a"] {
        room(s, name, RoomKind::Public, a.id).await;
    }
    room(s, "a_private", RoomKind::Private, a.id).await;
    let prefixed = |prefix: &str, scope: RoomScope, limit: Option<u32>| RoomListQuery {
        prefix: Some(RoomName::parse(prefix).unwrap()),
        ..list_query(scope, limit)
    };
    let sorted = |pages: Vec<Vec<String>>| {
        let mut all = pages.concat();
        all.sort();
        all
    };
    // `_` is a character like any other, not LIKE's wildcard.
    let pages = all_pages(s, a.id, prefixed("a_", RoomScope::Public, None)).await;
    assert_eq!(sorted(pages), vec!["a_b", "a_bc"]);
    let pages = all_pages(s, a.id, prefixed("A_", RoomScope::Member, Some(1))).await;
    assert_eq!(sorted(pages), vec!["a_b", "a_bc", "a_private"]);
    let pages = all_pages(s, a.id, prefixed("a", RoomScope::Public, Some(2))).await;
    assert_eq!(
        sorted(pages),
        vec!["a-b", "a.b", "a_b", "a_bc", "ab", "axb"]
    );
    let pages = all_pages(s, a.id, prefixed("zz", RoomScope::Public, None)).await;
    assert_eq!(pages, vec![Vec::<String>::new()]);
}

async fn read_markers_only_move_forward(s: &Store) {
    let a = user(s, "alice").await;
    let b = user(s, "bob").await;
    let r = room(s, "room", RoomKind::Public, a.id).await;
    let other = room(s, "other", RoomKind::Public, a.id).await;
    let m1 = post(s, &r, &a, "1").await;
    let m2 = post(s, &r, &a, "2").await;
    let elsewhere = post(s, &other, &a, "x").await;

    let (marker, moved) = s.set_read_marker(r.id, a.id, m2.id).await.unwrap();
    assert_eq!((marker.last_read, moved), (Some(m2.id), true));
    // Backward, or to where it is: unchanged, and it says so.
    let (marker, moved) = s.set_read_marker(r.id, a.id, m1.id).await.unwrap();
    assert_eq!((marker.last_read, moved), (Some(m2.id), false));
    let (marker, moved) = s.set_read_marker(r.id, a.id, m2.id).await.unwrap();
    assert_eq!((marker.last_read, moved), (Some(m2.id), false));
    assert!(matches!(
        s.set_read_marker(r.id, a.id, elsewhere.id).await,
        Err(StoreError::NotFound("message"))
    ));
    assert!(matches!(
        s.set_read_marker(r.id, a.id, MessageId(999_999)).await,
        Err(StoreError::NotFound("message"))
    ));
    assert!(matches!(
        s.set_read_marker(r.id, b.id, m1.id).await,
        Err(StoreError::NotFound("membership"))
    ));
}

async fn appends_are_idempotent_on_client_id(s: &Store) {
    let a = user(s, "alice").await;
    let b = user(s, "bob").await;
    let r = room(s, "room", RoomKind::Public, a.id).await;
    let first = s
        .append_message(&msg(&r, &a, "hello", Some("c-1")))
        .await
        .unwrap();
    assert!(first.created);
    let m = &first.message;
    assert_eq!(
        (m.room_id, &m.room, m.sender_id, &m.sender),
        (r.id, &r.name, a.id, &a.username)
    );
    assert_eq!(m.body, "hello");
    assert_eq!(m.client_id.as_ref().map(|c| c.as_str()), Some("c-1"));
    assert_eq!((m.edited_at, m.deleted_at), (None, None));

    // A retry, even with another body, returns the first message.
    let retry = s
        .append_message(&msg(&r, &a, "hello again", Some("c-1")))
        .await
        .unwrap();
    assert!(!retry.created);
    assert_eq!(retry.message, first.message);
    assert_eq!(s.message_by_id(m.id).await.unwrap(), first.message);

    // Client ids are per sender; no client id never collides.
    assert!(
        s.append_message(&msg(&r, &b, "mine", Some("c-1")))
            .await
            .unwrap()
            .created
    );
    assert!(
        s.append_message(&msg(&r, &a, "x", None))
            .await
            .unwrap()
            .created
    );
    assert!(
        s.append_message(&msg(&r, &a, "x", None))
            .await
            .unwrap()
            .created
    );
    assert_eq!(
        s.history(r.id, &HistoryQuery::default())
            .await
            .unwrap()
            .messages
            .len(),
        4
    );

    let mut bad = msg(&r, &a, "x", None);
    bad.room_id = RoomId(999_999);
    assert!(matches!(
        s.append_message(&bad).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.message_by_id(MessageId(999_999)).await,
        Err(StoreError::NotFound("message"))
    ));
}

async fn concurrent_retries_store_one_message(s: &Store) {
    let a = user(s, "alice").await;
    let r = room(s, "room", RoomKind::Public, a.id).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            let m = msg(&r, &a, "once", Some("retry-me"));
            tokio::spawn(async move { s.append_message(&m).await })
        })
        .collect();
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let appended = t.await.unwrap().unwrap();
        created += usize::from(appended.created);
        ids.insert(appended.message.id);
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
    assert_eq!(
        s.history(r.id, &HistoryQuery::default())
            .await
            .unwrap()
            .messages
            .len(),
        1
    );
}

async fn history_pages_by_cursor(s: &Store) {
    let a = user(s, "alice").await;
    let r = room(s, "room", RoomKind::Public, a.id).await;
    let noise = room(s, "noise", RoomKind::Public, a.id).await;
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(post(s, &r, &a, &format!("m{i}")).await.id);
        post(s, &noise, &a, "noise").await;
    }
    let bodies = |p: &parley_store::HistoryPage| {
        p.messages
            .iter()
            .map(|m| m.body.clone())
            .collect::<Vec<_>>()
    };
    let q =
        |before: Option<MessageId>, after: Option<MessageId>, limit: Option<u32>| HistoryQuery {
            before,
            after,
            limit,
        };

    let latest = s.history(r.id, &q(None, None, Some(10))).await.unwrap();
    assert_eq!(
        bodies(&latest),
        (15..25).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert!(latest.has_more);
    let older = s
        .history(r.id, &q(Some(latest.messages[0].id), None, Some(10)))
        .await
        .unwrap();
    assert_eq!(
        bodies(&older),
        (5..15).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert!(older.has_more);
    let oldest = s
        .history(r.id, &q(Some(older.messages[0].id), None, Some(10)))
        .await
        .unwrap();
    assert_eq!(
        bodies(&oldest),
        (0..5).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert!(!oldest.has_more);

    let forward = s
        .history(r.id, &q(None, Some(ids[2]), Some(5)))
        .await
        .unwrap();
    assert_eq!(
        bodies(&forward),
        (3..8).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert!(forward.has_more);
    let tail = s
        .history(r.id, &q(None, Some(ids[20]), Some(10)))
        .await
        .unwrap();
    assert_eq!(
        bodies(&tail),
        (21..25).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert!(!tail.has_more);
    let range = s
        .history(r.id, &q(Some(ids[9]), Some(ids[4]), None))
        .await
        .unwrap();
    assert_eq!(
        bodies(&range),
        (5..9).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert!(!range.has_more);

    // The limit is capped and at least one; the default is 50.
    assert_eq!(
        s.history(r.id, &q(None, None, Some(0)))
            .await
            .unwrap()
            .messages
            .len(),
        1
    );
    assert_eq!(
        HistoryQuery {
            limit: Some(10_000),
            ..HistoryQuery::default()
        }
        .effective_limit(),
        HistoryQuery::MAX_LIMIT
    );
    assert_eq!(
        s.history(r.id, &q(None, None, None))
            .await
            .unwrap()
            .messages
            .len(),
        25
    );

    // Tombstones keep their place.
    s.delete_message(ids[24], a.id).await.unwrap();
    let page = s.history(r.id, &q(None, None, Some(1))).await.unwrap();
    assert_eq!(page.messages[0].id, ids[24]);
    assert_eq!(page.messages[0].body, "");
    assert!(page.messages[0].deleted_at.is_some());
    assert!(
        s.history(RoomId(999_999), &q(None, None, None))
            .await
            .unwrap()
            .messages
            .is_empty()
    );
}

async fn edit_and_delete_need_author_or_staff(s: &Store) {
    let author = user(s, "author").await;
    let other = user(s, "other").await;
    let staff = user(s, "staff").await;
    s.set_staff(staff.id, true).await.unwrap();
    let r = room(s, "room", RoomKind::Public, author.id).await;
    let m = post(s, &r, &author, "original").await;
    let body = |t: &str| MessageBody::parse(t).unwrap();

    let edited = s
        .edit_message(m.id, author.id, &body("edited"))
        .await
        .unwrap();
    assert_eq!(edited.body, "edited");
    assert!(edited.edited_at.is_some());
    assert_eq!(
        (edited.id, edited.created_at, &edited.sender),
        (m.id, m.created_at, &author.username)
    );
    assert!(matches!(
        s.edit_message(m.id, other.id, &body("hijack")).await,
        Err(StoreError::Forbidden(_))
    ));
    assert!(matches!(
        s.delete_message(m.id, other.id).await,
        Err(StoreError::Forbidden(_))
    ));
    assert_eq!(s.message_by_id(m.id).await.unwrap().body, "edited");
    assert_eq!(
        s.edit_message(m.id, staff.id, &body("moderated"))
            .await
            .unwrap()
            .body,
        "moderated"
    );
    assert!(matches!(
        s.edit_message(MessageId(999_999), author.id, &body("x"))
            .await,
        Err(StoreError::NotFound("message"))
    ));

    let gone = s.delete_message(m.id, author.id).await.unwrap();
    assert_eq!(gone.body, "");
    assert!(gone.deleted_at.is_some());
    // Once is all: a second delete (or a concurrent loser) is a conflict.
    assert!(matches!(
        s.delete_message(m.id, author.id).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.message_by_id(m.id).await.unwrap(), gone);
    assert!(matches!(
        s.edit_message(m.id, author.id, &body("back")).await,
        Err(StoreError::Conflict(_))
    ));

    let m2 = post(s, &r, &author, "by author").await;
    assert!(
        s.delete_message(m2.id, staff.id)
            .await
            .unwrap()
            .deleted_at
            .is_some()
    );
}

async fn revoked_tokens_are_checked_and_pruned(s: &Store) {
    let now = Timestamp::now();
    assert!(!s.is_revoked("jti-1").await.unwrap());
    assert!(
        s.revoke_token("jti-1", now.plus_seconds(3600))
            .await
            .unwrap()
    );
    assert!(
        !s.revoke_token("jti-1", now.plus_seconds(3600))
            .await
            .unwrap(),
        "second revoke reports it was already revoked"
    );
    assert!(s.is_revoked("jti-1").await.unwrap());
    assert!(
        s.revoke_token("jti-old", Timestamp(now.millis() - 1000))
            .await
            .unwrap()
    );
    assert!(s.any_revoked(&["nope", "jti-1"]).await.unwrap());
    assert!(!s.any_revoked(&["nope", "nada"]).await.unwrap());
    assert_eq!(s.prune_revoked(now).await.unwrap(), 1);
    assert!(!s.is_revoked("jti-old").await.unwrap());
    assert!(s.is_revoked("jti-1").await.unwrap());
}

async fn deleting_a_user_cascades(s: &Store) {
    let a = user(s, "alice").await;
    let b = user(s, "bob").await;
    let r = room(s, "room", RoomKind::Public, a.id).await;
    s.add_member(r.id, b.id, Role::Member).await.unwrap();
    post(s, &r, &a, "from alice").await;
    post(s, &r, &b, "from bob").await;
    s.delete_user(a.id).await.unwrap();
    let room = s.room_by_id(r.id).await.unwrap();
    assert_eq!(room.creator, None);
    assert_eq!(
        s.members(r.id)
            .await
            .unwrap()
            .iter()
            .map(|m| m.user_id)
            .collect::<Vec<_>>(),
        vec![b.id]
    );
    let history = s.history(r.id, &HistoryQuery::default()).await.unwrap();
    assert_eq!(
        history
            .messages
            .iter()
            .map(|m| m.body.as_str())
            .collect::<Vec<_>>(),
        vec!["from bob"]
    );
}

async fn batched_appends_keep_order_and_idempotency(s: &Store) {
    let a = user(s, "alice").await;
    let b = user(s, "bob").await;
    let r = room(s, "room", RoomKind::Public, a.id).await;
    let earlier = s
        .append_message(&msg(&r, &a, "earlier", Some("c-0")))
        .await
        .unwrap()
        .message;
    let batch = vec![
        msg(&r, &a, "one", Some("c-1")),
        msg(&r, &a, "retry of earlier", Some("c-0")),
        msg(&r, &b, "two", None),
        msg(&r, &a, "one again", Some("c-1")),
        msg(&r, &b, "three", Some("c-1")),
    ];
    let results: Vec<_> = s
        .append_messages(&batch)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        results.iter().map(|r| r.created).collect::<Vec<_>>(),
        vec![true, false, true, false, true]
    );
    assert_eq!(results[0].message.body, "one");
    assert_eq!(results[1].message, earlier);
    assert_eq!(results[3].message, results[0].message);
    assert_eq!(
        (
            results[4].message.sender_id,
            results[4].message.body.as_str()
        ),
        (b.id, "three")
    );
    assert_eq!(results[2].message.sender, b.username);
    assert!(
        results[0].message.id < results[2].message.id
            && results[2].message.id < results[4].message.id
    );
    let page = s.history(r.id, &HistoryQuery::default()).await.unwrap();
    assert_eq!(
        page.messages
            .iter()
            .map(|m| m.body.as_str())
            .collect::<Vec<_>>(),
        vec!["earlier", "one", "two", "three"]
    );
    assert_eq!(page.messages[1], results[0].message);
    assert!(s.append_messages(&[]).await.is_empty());
}

async fn a_bad_message_fails_alone_in_a_batch(s: &Store) {
    let a = user(s, "alice").await;
    let r = room(s, "room", RoomKind::Public, a.id).await;
    let mut bad = msg(&r, &a, "nowhere", Some("c-bad"));
    bad.room_id = RoomId(999_999);
    let results = s
        .append_messages(&[
            msg(&r, &a, "ok 1", Some("c-1")),
            bad,
            msg(&r, &a, "ok 2", None),
        ])
        .await;
    assert!(results[0].as_ref().unwrap().created);
    assert!(
        matches!(results[1], Err(StoreError::NotFound(_))),
        "{:?}",
        results[1]
    );
    assert!(results[2].as_ref().unwrap().created);
    assert_eq!(
        s.history(r.id, &HistoryQuery::default())
            .await
            .unwrap()
            .messages
            .len(),
        2
    );
}

async fn the_batcher_groups_concurrent_appends(s: &Store) {
    let a = user(s, "alice").await;
    let r = room(s, "room", RoomKind::Public, a.id).await;
    let batcher = parley_store::AppendBatcher::spawn(
        s.clone(),
        parley_store::BatchOptions {
            max_batch: 16,
            writers: 2,
            queue: 64,
            // Always through the queue, so batching is what is tested.
            direct_below: 0,
        },
    );
    // 64 appends, each client id sent twice.
    let tasks: Vec<_> = (0..128)
        .map(|i| {
            let batcher = batcher.clone();
            let m = msg(
                &r,
                &a,
                &format!("m{}", i % 64),
                Some(&format!("c-{}", i % 64)),
            );
            tokio::spawn(async move { batcher.append(m).await })
        })
        .collect();
    let mut created = 0;
    let mut by_client = std::collections::HashMap::new();
    for t in tasks {
        let appended = t.await.unwrap().unwrap();
        created += usize::from(appended.created);
        let key = appended.message.client_id.clone().unwrap();
        let id = *by_client.entry(key).or_insert(appended.message.id);
        assert_eq!(
            id, appended.message.id,
            "both sends of a client id get the same message"
        );
    }
    assert_eq!(created, 64);
    // With the defaults, a lone append takes the direct path, idempotency included.
    let quiet =
        parley_store::AppendBatcher::spawn(s.clone(), parley_store::BatchOptions::default());
    let first = quiet
        .append(msg(&r, &a, "alone", Some("c-alone")))
        .await
        .unwrap();
    assert!(first.created);
    let again = quiet
        .append(msg(&r, &a, "alone", Some("c-alone")))
        .await
        .unwrap();
    assert_eq!((again.created, again.message.id), (false, first.message.id));
    assert_eq!(
        s.history(
            r.id,
            &HistoryQuery {
                limit: Some(100),
                ..HistoryQuery::default()
            }
        )
        .await
        .unwrap()
        .messages
        .len(),
        65
    );
}

/// `append_all` groups from many callers at once, through several writers: each group's
/// messages are stored in its order (ids grow along it), with one result per message, the
/// same client id twice in one group stored once, and an empty group answered at once.
async fn the_batcher_keeps_each_group_in_order(s: &Store) {
    const GROUPS: usize = 24;
    const EACH: usize = 5;
    let a = user(s, "alice").await;
    let rooms = [
        room(s, "one", RoomKind::Public, a.id).await,
        room(s, "two", RoomKind::Public, a.id).await,
    ];
    let batcher = parley_store::AppendBatcher::spawn(
        s.clone(),
        parley_store::BatchOptions {
            // Smaller than two groups: batches end mid-stream and writers overlap.
            max_batch: 7,
            writers: 3,
            queue: 64,
            direct_below: 0,
        },
    );
    assert!(batcher.append_all(Vec::new()).await.is_empty());
    let tasks: Vec<_> = (0..GROUPS)
        .map(|g| {
            let batcher = batcher.clone();
            let group: Vec<_> = (0..EACH)
                .map(|k| {
                    let r = &rooms[(g + k) % 2];
                    msg(r, &a, &format!("g{g} m{k}"), Some(&format!("g{g}-{k}")))
                })
                .collect();
            tokio::spawn(async move { batcher.append_all(group).await })
        })
        .collect();
    for (g, task) in tasks.into_iter().enumerate() {
        let results = task.await.unwrap();
        assert_eq!(results.len(), EACH, "one result per message");
        let stored: Vec<_> = results.into_iter().map(|r| r.unwrap()).collect();
        let bodies: Vec<&str> = stored.iter().map(|a| a.message.body.as_str()).collect();
        let expected: Vec<String> = (0..EACH).map(|k| format!("g{g} m{k}")).collect();
        assert_eq!(bodies, expected, "results in the group's order");
        assert!(stored.iter().all(|a| a.created));
        assert!(
            stored.windows(2).all(|p| p[0].message.id < p[1].message.id),
            "group {g}'s ids follow its order: {:?}",
            stored.iter().map(|a| a.message.id).collect::<Vec<_>>()
        );
    }
    let twice = batcher
        .append_all(vec![
            msg(&rooms[0], &a, "dup", Some("dup")),
            msg(&rooms[0], &a, "dup", Some("dup")),
        ])
        .await;
    let twice: Vec<_> = twice.into_iter().map(|r| r.unwrap()).collect();
    assert!(twice[0].created && !twice[1].created);
    assert_eq!(twice[0].message, twice[1].message);
    let mut total = 0;
    for r in &rooms {
        total += ids_after(s, r.id, None).await.len();
    }
    assert_eq!(total, GROUPS * EACH + 1, "every message stored once");
}

async fn guest(s: &Store, name: &str) -> User {
    s.create_user(&NewUser {
        username: UserName::parse(name).unwrap(),
        email: None,
        display_name: None,
        password_hash: "!".into(),
        is_staff: true,
        is_guest: true,
    })
    .await
    .unwrap()
}

async fn stale_guests_are_pruned_and_their_messages_kept(s: &Store) {
    let alice = user(s, "alice").await;
    let lobby = room(s, "lobby", RoomKind::Public, alice.id).await;
    let silent = guest(s, "guest.silent.aaaaa").await;
    let talker = guest(s, "guest.talker.bbbbb").await;
    // The flag is stored and read back; a guest is never staff, whatever was asked.
    assert!(silent.is_guest && !silent.is_staff);
    assert_eq!(s.user_by_id(talker.id).await.unwrap(), talker);
    assert!(!alice.is_guest);
    for g in [&silent, &talker] {
        s.add_member(lobby.id, g.id, Role::Member).await.unwrap();
    }
    let said = post(s, &lobby, &talker, "hello as a guest").await;
    assert!(said.guest);
    assert!(!post(s, &lobby, &alice, "hello").await.guest);
    let marks = |page: parley_store::HistoryPage| -> Vec<(String, bool)> {
        page.messages
            .into_iter()
            .map(|m| (m.body, m.guest))
            .collect()
    };
    let expected = vec![
        ("hello as a guest".to_owned(), true),
        ("hello".to_owned(), false),
    ];
    let history = s.history(lobby.id, &HistoryQuery::default()).await.unwrap();
    assert_eq!(marks(history), expected);

    // Nothing made before the cutoff: nothing happens.
    assert_eq!(s.prune_guests(Timestamp(0)).await.unwrap(), 0);
    assert_eq!(s.members(lobby.id).await.unwrap().len(), 3);

    let later = Timestamp::now().plus_seconds(1);
    assert_eq!(s.prune_guests(later).await.unwrap(), 1);
    assert!(matches!(
        s.user_by_id(silent.id).await,
        Err(StoreError::NotFound(_))
    ));
    // The guest who posted stays as its messages' author, but in no room.
    assert_eq!(s.user_by_id(talker.id).await.unwrap().id, talker.id);
    let members: Vec<UserId> = s
        .members(lobby.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    assert_eq!(members, [alice.id]);
    let history = s.history(lobby.id, &HistoryQuery::default()).await.unwrap();
    assert_eq!(marks(history), expected);
    // Accounts are never pruned, and pruning again finds nothing.
    assert_eq!(s.user_by_id(alice.id).await.unwrap().id, alice.id);
    assert_eq!(s.prune_guests(later).await.unwrap(), 0);

    // Banned guest names, and finding the guests who chose one (exactly that one: `_` is
    // no wildcard, and `a` is not `a.b`).
    let name = |n: &str| UserName::parse(n).unwrap();
    let exact = guest(s, "guest.ab_c.ccccc").await;
    let other = guest(s, "guest.abxc.ddddd").await;
    let dotted = guest(s, "guest.ab_c.x.eeeee").await;
    assert_eq!(s.guests_named(&name("ab_c")).await.unwrap(), [exact.id]);
    assert_eq!(s.guests_named(&name("abxc")).await.unwrap(), [other.id]);
    assert_eq!(s.guests_named(&name("ab_c.x")).await.unwrap(), [dotted.id]);
    assert_eq!(s.guests_named(&name("alice")).await.unwrap(), []);
    assert!(!s.guest_name_banned("ab_c").await.unwrap());
    assert!(s.ban_guest_name(&name("ab_c")).await.unwrap());
    assert!(!s.ban_guest_name(&name("ab_c")).await.unwrap());
    assert!(s.guest_name_banned("ab_c").await.unwrap());
    assert!(!s.guest_name_banned("abxc").await.unwrap());
    assert!(s.unban_guest_name(&name("ab_c")).await.unwrap());
    assert!(!s.unban_guest_name(&name("ab_c")).await.unwrap());
    assert!(!s.guest_name_banned("ab_c").await.unwrap());
}

async fn external_identities_link_accounts(s: &Store) {
    let iss = "https://accounts.example.com";
    assert_eq!(s.user_by_external(iss, "sub-1").await.unwrap(), None);
    let new = |name: &str| NewUser {
        username: UserName::parse(name).unwrap(),
        email: None,
        display_name: None,
        password_hash: "!".into(),
        is_staff: false,
        is_guest: false,
    };
    let u = s
        .create_external_user(&new("gina"), iss, "sub-1")
        .await
        .unwrap();
    assert_eq!(
        s.user_by_external(iss, "sub-1").await.unwrap(),
        Some(u.clone())
    );
    // Same subject at another issuer is another identity.
    assert_eq!(
        s.user_by_external("https://other.example", "sub-1")
            .await
            .unwrap(),
        None
    );
    // An identity links one account; a taken name fails, and neither leaves a user behind.
    assert!(matches!(
        s.create_external_user(&new("gina2"), iss, "sub-1").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.user_by_name(&UserName::parse("gina2").unwrap()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.create_external_user(&new("gina"), iss, "sub-2").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.user_by_external(iss, "sub-2").await.unwrap(), None);
    s.delete_user(u.id).await.unwrap();
    assert_eq!(s.user_by_external(iss, "sub-1").await.unwrap(), None);
}

async fn external_identities_link_to_accounts_by_email(s: &Store) {
    let iss = "https://accounts.example.com";
    let with_email = |name: &str, email: Option<&str>, is_guest: bool| NewUser {
        username: UserName::parse(name).unwrap(),
        email: email.map(|e| parley_domain::Email::parse(e).unwrap()),
        display_name: None,
        password_hash: "!".into(),
        is_staff: false,
        is_guest,
    };
    let hana = s
        .create_user(&with_email("hana", Some("Hana@Example.com"), false))
        .await
        .unwrap();
    s.create_user(&with_email(
        "guest.hana.abcde",
        Some("hana@example.com"),
        true,
    ))
    .await
    .unwrap();
    s.create_user(&with_email("ivo", None, false))
        .await
        .unwrap();
    let email = parley_domain::Email::parse("hana@EXAMPLE.com").unwrap();
    // Case does not matter; guests never match.
    assert_eq!(
        s.users_by_email(&email, 2).await.unwrap(),
        vec![hana.clone()]
    );
    let nobody = parley_domain::Email::parse("nobody@example.com").unwrap();
    assert!(s.users_by_email(&nobody, 2).await.unwrap().is_empty());
    s.link_external(hana.id, iss, "sub-h").await.unwrap();
    assert_eq!(
        s.user_by_external(iss, "sub-h")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(hana.id)
    );
    // An identity links one account only.
    assert!(s.link_external(hana.id, iss, "sub-h").await.is_err());
}

// ---- backend-specific behaviour ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_postgres_is_unavailable() {
    let opts = StoreOptions {
        connect_timeout: std::time::Duration::from_secs(2),
        ..StoreOptions::default()
    };
    // Port 1 refuses connections.
    let store = Store::connect("postgres://postgres@127.0.0.1:1/test", &opts).unwrap();
    let err = store.ping().await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let err = store.user_by_id(UserId(1)).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    // A batch fails as a whole, at once, with the same answer for every message.
    let m = NewMessage {
        room_id: RoomId(1),
        room: RoomName::parse("r").unwrap(),
        sender_id: UserId(1),
        sender: UserName::parse("abc").unwrap(),
        sender_display_name: None,
        sender_is_guest: false,
        body: MessageBody::parse("x").unwrap(),
        client_id: None,
        reply_to: None,
        mentions: Vec::new(),
    };
    let results = store.append_messages(&[m.clone(), m]).await;
    assert_eq!(results.len(), 2);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(StoreError::Unavailable(_)))),
        "{results:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_urls_are_invalid() {
    let err = Store::connect("mysql://root:secret@host/db", &StoreOptions::default()).unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ref m) if m.contains("***") && !m.contains("secret")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory_works_with_one_connection() {
    let store = Store::connect("sqlite::memory:", &StoreOptions::default()).unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.migrate().await.unwrap();
    let a = user(&store, "alice").await;
    // Every operation sees the same in-memory database.
    assert_eq!(store.user_by_name(&a.username).await.unwrap(), a);
    assert_eq!(store.pool_status().0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_test_databases_are_isolated() {
    let one = TestDb::postgres().await.unwrap();
    let two = TestDb::postgres().await.unwrap();
    let a = user(&one, "alice").await;
    assert!(matches!(
        two.user_by_name(&a.username).await,
        Err(StoreError::NotFound(_))
    ));
    // The same name is free in the other schema.
    user(&two, "alice").await;
}

// `#[actix_web::main]` and plain `#[tokio::test]` are current-thread runtimes: migrations must
// work there too (they run on the blocking pool, not on the runtime thread).
#[tokio::test]
async fn migrations_run_on_a_current_thread_runtime() {
    let pg = TestDb::postgres().await.unwrap();
    pg.migrate().await.unwrap();
    pg.ping().await.unwrap();
    let lite = TestDb::sqlite().await.unwrap();
    lite.migrate().await.unwrap();
    user(&lite, "alice").await;
}

/// A client that reconnects asks for everything after the last id it saw. While many writers
/// append to the room, a reader polling `after=<last seen>` must end up with every message,
/// each once and in order: ids must become visible in order within a room.
async fn a_reader_paging_forward_misses_nothing_under_concurrent_appends(s: &Store) {
    reader_paging_forward_misses_nothing(s, None).await;
}

/// The same through the group-commit batcher, every append queued (direct path off): batches
/// written by several writer tasks at once, each batch mixing two rooms.
async fn a_reader_paging_forward_misses_nothing_under_batched_appends(s: &Store) {
    let opts = parley_store::BatchOptions {
        max_batch: 8,
        writers: 4,
        direct_below: 0,
        ..parley_store::BatchOptions::default()
    };
    reader_paging_forward_misses_nothing(s, Some(opts)).await;
}

/// The same with single appends (the batcher's direct path) and batches racing each other.
async fn a_reader_paging_forward_misses_nothing_under_mixed_appends(s: &Store) {
    let opts = parley_store::BatchOptions {
        max_batch: 8,
        writers: 4,
        direct_below: 2,
        ..parley_store::BatchOptions::default()
    };
    reader_paging_forward_misses_nothing(s, Some(opts)).await;
}

/// Ids of the next page (up to 100) of `room` after `after` (`None`: from the start;
/// `after=0` rather than no cursor, which would mean "the newest page").
async fn ids_after(s: &Store, room: RoomId, after: Option<MessageId>) -> Vec<MessageId> {
    let query = HistoryQuery {
        before: None,
        after: Some(after.unwrap_or(MessageId(0))),
        limit: Some(100),
    };
    let page = s.history(room, &query).await.unwrap();
    page.messages.iter().map(|m| m.id).collect()
}
/// Writers append to room `busy` (and, so batches span rooms, to `other`) directly or
/// through a batcher with `batch`; a reader pages `busy` forward meanwhile.
async fn reader_paging_forward_misses_nothing(
    s: &Store,
    batch: Option<parley_store::BatchOptions>,
) {
    const WRITERS: usize = 8;
    const EACH: usize = 40;
    let owner = user(s, "owner").await.id;
    let r = room(s, "busy", RoomKind::Public, owner).await;
    let other = room(s, "other", RoomKind::Public, owner).await;
    let batcher = batch.map(|opts| parley_store::AppendBatcher::spawn(s.clone(), opts));
    let mut senders = Vec::new();
    for w in 0..WRITERS {
        senders.push(user(s, &format!("writer{w}")).await);
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (s, done) = (s.clone(), done.clone());
        tokio::spawn(async move {
            let mut seen: Vec<MessageId> = Vec::new();
            loop {
                // Read `finished` before the page: a page read after every writer finished
                // sees everything, so the loop ends only after one such page is empty.
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                let page = ids_after(&s, r.id, seen.last().copied()).await;
                let empty = page.is_empty();
                seen.extend(page);
                if finished && empty {
                    return seen;
                }
            }
        })
    };
    let mut writers = Vec::new();
    for (w, sender) in senders.into_iter().enumerate() {
        let (s, r, other, batcher) = (s.clone(), r.clone(), other.clone(), batcher.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                let to = if (w + i) % 4 == 3 { &other } else { &r };
                let m = NewMessage {
                    room_id: to.id,
                    room: to.name.clone(),
                    sender_id: sender.id,
                    sender: sender.username.clone(),
                    sender_display_name: None,
                    sender_is_guest: false,
                    body: MessageBody::parse(&format!("m{i}")).unwrap(),
                    client_id: None,
                    reply_to: None,
                    mentions: Vec::new(),
                };
                let appended = match &batcher {
                    Some(b) => b.append(m).await.unwrap(),
                    None => s.append_message(&m).await.unwrap(),
                };
                assert!(appended.created);
                assert_eq!(appended.message.room_id, to.id);
                assert_eq!(appended.message.body, format!("m{i}"));
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let seen = reader.await.unwrap();
    let mut stored: Vec<MessageId> = Vec::new();
    loop {
        let page = ids_after(s, r.id, stored.last().copied()).await;
        if page.is_empty() {
            break;
        }
        stored.extend(page);
    }
    let to_other = (0..WRITERS)
        .flat_map(|w| (0..EACH).filter(move |i| (w + i) % 4 == 3))
        .count();
    assert_eq!(stored.len(), WRITERS * EACH - to_other);
    assert_eq!(
        seen, stored,
        "the forward-paging reader skipped or repeated messages"
    );
    let others = s
        .history(
            other.id,
            &HistoryQuery {
                before: None,
                after: Some(MessageId(0)),
                limit: Some(100),
            },
        )
        .await
        .unwrap();
    assert_eq!(others.messages.len(), to_other);
}

async fn the_audit_log_keeps_actions_and_filters_them(s: &Store) {
    let boss = user(s, "boss").await;
    let owner = user(s, "owner").await;
    let name = |n: &str| UserName::parse(n).unwrap();
    let lobby = RoomName::parse("lobby").unwrap();
    let spam = Reason::parse("spam").unwrap();
    let record = |actor, action, target, reason| NewAuditEntry {
        actor,
        action,
        target,
        reason,
    };
    let first = s
        .record_audit(&record(
            &boss,
            AuditAction::PromoteStaff,
            AuditTarget::user(&name("owner")),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(first.actor, boss.username);
    assert_eq!(first.actor_id, Some(boss.id));
    assert_eq!(first.action, AuditAction::PromoteStaff);
    assert_eq!(first.target.user, Some(name("owner")));
    let ban = s
        .record_audit(&record(
            &owner,
            AuditAction::BanFromRoom,
            AuditTarget::member(&lobby, &name("troll")),
            Some(&spam),
        ))
        .await
        .unwrap();
    assert!(ban.id > first.id);
    assert_eq!(ban.reason, Some(spam.clone()));
    s.record_audit(&record(
        &owner,
        AuditAction::DeleteMessage,
        AuditTarget::room(&lobby).with_detail("42"),
        None,
    ))
    .await
    .unwrap();

    let page = |q: AuditQuery| async move {
        let entries = s.audit_page(&AuditQuery { limit: 10, ..q }).await.unwrap();
        entries.into_iter().map(|e| e.action).collect::<Vec<_>>()
    };
    use AuditAction::*;
    assert_eq!(
        page(AuditQuery::default()).await,
        [DeleteMessage, BanFromRoom, PromoteStaff]
    );
    let by_owner = AuditQuery {
        actor: Some(owner.username.clone()),
        ..Default::default()
    };
    assert_eq!(page(by_owner).await, [DeleteMessage, BanFromRoom]);
    let on_troll = AuditQuery {
        target_user: Some(name("troll")),
        ..Default::default()
    };
    assert_eq!(page(on_troll).await, [BanFromRoom]);
    let in_lobby = AuditQuery {
        target_room: Some(lobby.clone()),
        ..Default::default()
    };
    assert_eq!(page(in_lobby).await, [DeleteMessage, BanFromRoom]);
    let older = AuditQuery {
        before: Some(ban.id),
        ..Default::default()
    };
    assert_eq!(page(older).await, [PromoteStaff]);
    let one = s
        .audit_page(&AuditQuery {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);

    // An entry outlives its actor's account: the name stays, the id is cleared.
    s.delete_user(boss.id).await.unwrap();
    let kept = s
        .audit_page(&AuditQuery {
            before: Some(ban.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(kept[0].actor, name("boss"));
    assert_eq!(kept[0].actor_id, None);
}

async fn staff_find_accounts_by_name_or_email(s: &Store) {
    let with_mail = |name: &str, email: Option<&str>| NewUser {
        username: UserName::parse(name).unwrap(),
        email: email.map(|e| parley_domain::Email::parse(e).unwrap()),
        display_name: None,
        password_hash: "h".into(),
        is_staff: false,
        is_guest: false,
    };
    s.create_user(&with_mail("anna", Some("Anna@Example.ORG")))
        .await
        .unwrap();
    s.create_user(&with_mail("ann_b", None)).await.unwrap();
    s.create_user(&with_mail("bert", Some("b@other.net")))
        .await
        .unwrap();
    guest(s, "guest.anna.aaaaa").await;
    let gone = user(s, "annex").await;
    s.erase_user(gone.id).await.unwrap();
    let names = |users: Vec<User>| -> Vec<String> {
        users
            .into_iter()
            .map(|u| u.username.into_string())
            .collect()
    };
    let find = |q: Option<&str>, after: Option<&str>, limit: i64| UserQuery {
        q: q.map(str::to_owned),
        after: after.map(|a| UserName::parse(a).unwrap()),
        limit,
    };
    // No guests, no erased accounts; name order.
    assert_eq!(
        names(s.list_users(&find(None, None, 10)).await.unwrap()),
        ["ann_b", "anna", "bert"]
    );
    assert_eq!(
        names(s.list_users(&find(Some("ANN"), None, 10)).await.unwrap()),
        ["ann_b", "anna"]
    );
    // E-mail, case-insensitive, by substring.
    assert_eq!(
        names(
            s.list_users(&find(Some("example.org"), None, 10))
                .await
                .unwrap()
        ),
        ["anna"]
    );
    // `_` is no wildcard: only the name with an underscore.
    assert_eq!(
        names(s.list_users(&find(Some("n_"), None, 10)).await.unwrap()),
        ["ann_b"]
    );
    assert_eq!(
        names(s.list_users(&find(None, Some("ann_b"), 1)).await.unwrap()),
        ["anna"]
    );
}

async fn accounts_are_deactivated_and_their_token_epoch_raised(s: &Store) {
    let alice = user(s, "alice").await;
    assert!(alice.is_active);
    assert_eq!(alice.token_epoch, 0);
    let off = s.set_active(alice.id, false).await.unwrap();
    assert!(!off.is_active);
    assert_eq!(off.token_epoch, 1);
    let on = s.set_active(alice.id, true).await.unwrap();
    assert!(on.is_active);
    assert_eq!(
        on.token_epoch, 1,
        "a reactivation does not bring old tokens back"
    );
    let reset = s.reset_password_hash(alice.id, "new-hash").await.unwrap();
    assert_eq!(reset.token_epoch, 2);
    let creds = s.credentials(&alice.username).await.unwrap();
    assert_eq!(creds.password_hash, "new-hash");
    assert!(matches!(
        s.set_active(UserId(999_999), false).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn an_erased_account_keeps_its_messages(s: &Store) {
    let alice = user(s, "alice").await;
    let bob = user(s, "bob").await;
    let lobby = room(s, "lobby", RoomKind::Public, alice.id).await;
    s.add_member(lobby.id, bob.id, Role::Member).await.unwrap();
    let said = post(s, &lobby, &bob, "still here").await;
    let gone = s.erase_user(bob.id).await.unwrap();
    assert_eq!(gone.username.as_str(), format!("deleted.{}", bob.id.get()));
    assert!(!gone.is_active && !gone.is_staff && gone.email.is_none());
    assert_eq!(gone.token_epoch, 1);
    let kept = s.message_by_id(said.id).await.unwrap();
    assert_eq!(kept.body, "still here");
    assert_eq!(kept.sender, gone.username);
    assert!(s.user_rooms(bob.id).await.unwrap().is_empty());
    assert!(!s.is_member(lobby.id, bob.id).await.unwrap());
    // The name is free again.
    user(s, "bob").await;
    let rooms = s.user_rooms(alice.id).await.unwrap();
    assert_eq!(rooms.len(), 1);
    assert_eq!(
        (rooms[0].name.as_str(), rooms[0].role),
        ("lobby", Role::Owner)
    );
    assert!(s.linked_identities(alice.id).await.unwrap().is_empty());
}

async fn default_rooms_are_ensured_and_joined(s: &Store) {
    let general = RoomName::parse("general").unwrap();
    let first = s.ensure_public_room(&general).await.unwrap();
    assert_eq!((first.kind, first.creator), (RoomKind::Public, None));
    let again = s.ensure_public_room(&general).await.unwrap();
    assert_eq!(again.id, first.id);
    assert!(
        s.ensure_public_room(&RoomName::parse("dm.1.2").unwrap())
            .await
            .is_err()
    );
    let alice = user(s, "alice").await;
    let missing = RoomName::parse("nowhere").unwrap();
    assert_eq!(
        s.join_rooms(alice.id, &[general.clone(), missing])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.join_rooms(alice.id, std::slice::from_ref(&general))
            .await
            .unwrap(),
        0
    );
    let m = s.membership(first.id, alice.id).await.unwrap().unwrap();
    assert_eq!(m.role, Role::Member);
}

async fn run_time_settings_are_stored(s: &Store) {
    assert_eq!(s.setting("guests").await.unwrap(), None);
    s.set_setting("guests", "off").await.unwrap();
    assert_eq!(s.setting("guests").await.unwrap().as_deref(), Some("off"));
    s.set_setting("guests", "on").await.unwrap();
    assert_eq!(s.setting("guests").await.unwrap().as_deref(), Some("on"));
    let g = guest(s, "guest.g.aaaaa").await;
    user(s, "alice").await;
    assert_eq!(s.guest_ids().await.unwrap(), [g.id]);
}

async fn cli_audit_entries_have_no_actor_id(s: &Store) {
    let cli = UserName::parse("cli").unwrap();
    let target = parley_domain::AuditTarget::user(&UserName::parse("bob").unwrap());
    let entry = s
        .record_audit_unattributed(
            &cli,
            parley_domain::AuditAction::DeactivateUser,
            &target,
            None,
        )
        .await
        .unwrap();
    assert_eq!((entry.actor_id, entry.actor.as_str()), (None, "cli"));
    let page = s
        .audit_page(&AuditQuery {
            actor: Some(cli),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page, [entry]);
}

// --- room moderation (issue 16) ---

async fn room_bans_end_membership_and_hide_the_room(s: &Store) {
    let owner = user(s, "owner").await;
    let troll = user(s, "troll").await;
    let other = user(s, "other").await;
    let lobby = room(s, "lobby", RoomKind::Public, owner.id).await;
    let quiet = room(s, "quiet", RoomKind::Public, owner.id).await;
    s.add_member(lobby.id, troll.id, Role::Member)
        .await
        .unwrap();
    let standing = s.standing(lobby.id, troll.id).await.unwrap();
    assert!(standing.membership.is_some() && !standing.banned && standing.mute.is_none());

    let why = Reason::parse("spam").unwrap();
    assert!(
        s.ban_from_room(lobby.id, troll.id, owner.id, Some(&why))
            .await
            .unwrap()
    );
    let standing = s.standing(lobby.id, troll.id).await.unwrap();
    assert!(standing.membership.is_none() && standing.banned);
    assert!(s.is_banned(lobby.id, troll.id).await.unwrap());
    assert!(!s.is_banned(lobby.id, other.id).await.unwrap());
    // A second ban is no error, and keeps the first one's reason.
    assert!(
        !s.ban_from_room(lobby.id, troll.id, other.id, None)
            .await
            .unwrap()
    );
    let bans = s.room_bans(lobby.id).await.unwrap();
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].username.as_str(), "troll");
    assert_eq!(bans[0].reason.as_ref().map(Reason::as_str), Some("spam"));
    assert_eq!(
        bans[0].banned_by.as_ref().map(UserName::as_str),
        Some("owner")
    );
    // A non-member can be banned ahead of time.
    assert!(
        !s.ban_from_room(quiet.id, other.id, owner.id, None)
            .await
            .unwrap()
    );

    // The public directory leaves out the rooms a user is banned from, for them only.
    let names = |page: RoomPage| -> Vec<String> {
        page.rooms.iter().map(|r| r.room.name.to_string()).collect()
    };
    let public = RoomListQuery {
        scope: RoomScope::Public,
        ..RoomListQuery::default()
    };
    assert_eq!(
        names(s.room_page(troll.id, &public).await.unwrap()),
        ["quiet"]
    );
    assert_eq!(
        names(s.room_page(other.id, &public).await.unwrap()),
        ["lobby"]
    );
    assert_eq!(
        names(s.room_page(owner.id, &public).await.unwrap()),
        ["lobby", "quiet"]
    );

    assert!(s.unban_from_room(lobby.id, troll.id).await.unwrap());
    assert!(!s.unban_from_room(lobby.id, troll.id).await.unwrap());
    assert!(s.room_bans(lobby.id).await.unwrap().is_empty());
    assert!(!s.standing(lobby.id, troll.id).await.unwrap().banned);
    // Bans of unknown rooms or users are `NotFound`; a deleted room takes its bans along.
    assert!(matches!(
        s.ban_from_room(RoomId(999_999), troll.id, owner.id, None)
            .await,
        Err(StoreError::NotFound(_))
    ));
    s.delete_room(quiet.id).await.unwrap();
    assert!(s.room_bans(quiet.id).await.unwrap().is_empty());
}

async fn room_mutes_expire_and_are_lifted(s: &Store) {
    let owner = user(s, "owner").await;
    let loud = user(s, "loud").await;
    let lobby = room(s, "lobby", RoomKind::Public, owner.id).await;
    let now = Timestamp::now();
    let later = Timestamp(now.millis() + 60_000);
    let why = Reason::parse("shouting").unwrap();
    let mute = s
        .mute_in_room(lobby.id, loud.id, Some(later), owner.id, Some(&why))
        .await
        .unwrap();
    assert_eq!(mute.until, Some(later));
    let standing = s.standing(lobby.id, loud.id).await.unwrap();
    assert_eq!(standing.mute, Some(mute));
    assert!(standing.mute.unwrap().holds_at(now));
    assert!(!standing.mute.unwrap().holds_at(later));
    let mutes = s.room_mutes(lobby.id, now).await.unwrap();
    assert_eq!(mutes.len(), 1);
    assert_eq!(mutes[0].username.as_str(), "loud");
    assert_eq!(mutes[0].until, Some(later));
    assert_eq!(
        mutes[0].muted_by.as_ref().map(UserName::as_str),
        Some("owner")
    );
    // Past its end it is listed no more.
    assert!(s.room_mutes(lobby.id, later).await.unwrap().is_empty());
    // A new mute replaces the old one (here: until lifted).
    let forever = s
        .mute_in_room(lobby.id, loud.id, None, owner.id, None)
        .await
        .unwrap();
    assert_eq!(forever.until, None);
    let mutes = s
        .room_mutes(lobby.id, Timestamp(i64::MAX - 1))
        .await
        .unwrap();
    assert_eq!(mutes.len(), 1);
    assert_eq!(mutes[0].reason, None);
    assert!(s.unmute_in_room(lobby.id, loud.id).await.unwrap());
    assert!(!s.unmute_in_room(lobby.id, loud.id).await.unwrap());
    assert_eq!(s.standing(lobby.id, loud.id).await.unwrap().mute, None);
    // An expired mute lifted counts as none.
    let past = Timestamp(now.millis() - 1);
    s.mute_in_room(lobby.id, loud.id, Some(past), owner.id, None)
        .await
        .unwrap();
    assert!(!s.unmute_in_room(lobby.id, loud.id).await.unwrap());
}

async fn rooms_are_made_read_only_and_owners_counted(s: &Store) {
    let owner = user(s, "owner").await;
    let bob = user(s, "bob").await;
    let lobby = room(s, "lobby", RoomKind::Public, owner.id).await;
    assert!(!lobby.read_only);
    let changed = s.set_read_only(lobby.id, true).await.unwrap();
    assert!(changed.read_only);
    assert!(s.room_by_name(&lobby.name).await.unwrap().read_only);
    assert!(!s.set_read_only(lobby.id, false).await.unwrap().read_only);
    assert!(matches!(
        s.set_read_only(RoomId(999_999), true).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.owner_count(lobby.id).await.unwrap(), 1);
    s.add_member(lobby.id, bob.id, Role::Owner).await.unwrap();
    assert_eq!(s.owner_count(lobby.id).await.unwrap(), 2);
}

async fn a_moderator_deletes_anyones_message(s: &Store) {
    let owner = user(s, "owner").await;
    let bob = user(s, "bob").await;
    let lobby = room(s, "lobby", RoomKind::Public, owner.id).await;
    s.add_member(lobby.id, bob.id, Role::Member).await.unwrap();
    let m = s
        .append_message(&NewMessage {
            room_id: lobby.id,
            room: lobby.name.clone(),
            sender_id: bob.id,
            sender: bob.username.clone(),
            sender_display_name: None,
            sender_is_guest: false,
            body: MessageBody::parse("rude").unwrap(),
            client_id: None,
            reply_to: None,
            mentions: Vec::new(),
        })
        .await
        .unwrap()
        .message;
    // Without the engine's word, an owner is neither author nor staff.
    assert!(matches!(
        s.delete_message_as(m.id, owner.id, false).await,
        Err(StoreError::Forbidden(_))
    ));
    let gone = s.delete_message_as(m.id, owner.id, true).await.unwrap();
    assert!(gone.deleted_at.is_some());
    assert!(matches!(
        s.delete_message_as(m.id, owner.id, true).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn replies_are_stored_and_previewed_in_history(s: &Store) {
    let a = user(s, "alice").await;
    let b = user(s, "bob").await;
    let r = room(s, "room", RoomKind::Public, a.id).await;
    let original = post(s, &r, &a, &"x".repeat(120)).await;
    // Through the single append and through a batch alike.
    let mut one = msg(&r, &b, "single", None);
    one.reply_to = Some(original.id);
    let single = s.append_message(&one).await.unwrap().message;
    assert_eq!(single.reply_to.as_ref().map(|p| p.id), Some(original.id));
    let mut two = msg(&r, &b, "batched", Some("c-2"));
    two.reply_to = Some(original.id);
    let plain = msg(&r, &b, "plain", None);
    let results = s.append_messages(&[two, plain]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let page = s.history(r.id, &HistoryQuery::default()).await.unwrap();
    let by_body = |body: &str| {
        page.messages
            .iter()
            .find(|m| m.body == body)
            .cloned()
            .unwrap()
    };
    for body in ["single", "batched"] {
        let preview = by_body(body).reply_to.unwrap();
        assert_eq!(preview.id, original.id);
        assert_eq!(preview.sender, Some(a.username.clone()));
        assert_eq!(preview.excerpt, "x".repeat(100));
        assert!(!preview.deleted);
    }
    assert_eq!(by_body("plain").reply_to, None);
    assert!(by_body("plain").reactions.is_empty());
    // The original deleted: the preview says so, with no text.
    s.delete_message(original.id, a.id).await.unwrap();
    let page = s.history(r.id, &HistoryQuery::default()).await.unwrap();
    let preview = page
        .messages
        .iter()
        .find(|m| m.body == "single")
        .and_then(|m| m.reply_to.clone())
        .unwrap();
    assert!(preview.deleted && preview.excerpt.is_empty(), "{preview:?}");
    // The original gone altogether (its author's account deleted): still a preview, of
    // nothing.
    s.delete_user(a.id).await.unwrap();
    let page = s.history(r.id, &HistoryQuery::default()).await.unwrap();
    let preview = page
        .messages
        .iter()
        .find(|m| m.body == "single")
        .and_then(|m| m.reply_to.clone())
        .unwrap();
    assert_eq!(preview.sender, None);
    assert!(preview.deleted);
}

async fn reactions_are_unique_counted_limited_and_cascade(s: &Store) {
    let a = user(s, "alice").await;
    let b = user(s, "bob").await;
    let r = room(s, "room", RoomKind::Public, a.id).await;
    let m = post(s, &r, &a, "hello").await;
    let e = |raw: &str| Emoji::parse(raw).unwrap();
    assert_eq!(
        s.add_reaction(m.id, b.id, &e("👍"), 2).await.unwrap(),
        ReactionAdded::Added { count: 1 }
    );
    assert_eq!(
        s.add_reaction(m.id, b.id, &e("👍"), 2).await.unwrap(),
        ReactionAdded::Unchanged { count: 1 }
    );
    assert_eq!(
        s.add_reaction(m.id, a.id, &e("👍"), 2).await.unwrap(),
        ReactionAdded::Added { count: 2 }
    );
    assert_eq!(
        s.add_reaction(m.id, a.id, &e("🎉"), 2).await.unwrap(),
        ReactionAdded::Added { count: 1 }
    );
    // Two distinct emoji is the limit here: a third is refused, the existing ones still count.
    assert_eq!(
        s.add_reaction(m.id, b.id, &e("❤️"), 2).await.unwrap(),
        ReactionAdded::TooMany
    );
    assert_eq!(
        s.add_reaction(m.id, b.id, &e("🎉"), 2).await.unwrap(),
        ReactionAdded::Added { count: 2 }
    );
    let page = s.history(r.id, &HistoryQuery::default()).await.unwrap();
    let reactions = &page.messages[0].reactions;
    assert_eq!(reactions.len(), 2);
    assert_eq!(reactions[0].emoji, e("👍"));
    assert_eq!(reactions[0].count, 2);
    assert_eq!(
        reactions[0].users,
        vec![b.username.clone(), a.username.clone()]
    );
    assert_eq!(reactions[1].emoji, e("🎉"));
    // Removing: once, then nothing to remove.
    assert_eq!(
        s.remove_reaction(m.id, b.id, &e("👍")).await.unwrap(),
        (true, 1)
    );
    assert_eq!(
        s.remove_reaction(m.id, b.id, &e("👍")).await.unwrap(),
        (false, 1)
    );
    // Missing and deleted messages.
    assert_eq!(
        s.add_reaction(MessageId(999_999), b.id, &e("👍"), 2).await,
        Err(StoreError::NotFound("message"))
    );
    // A user's account deleted takes their reactions with it.
    s.delete_user(b.id).await.unwrap();
    let page = s.history(r.id, &HistoryQuery::default()).await.unwrap();
    let reactions = &page.messages[0].reactions;
    assert_eq!(reactions.len(), 2, "{reactions:?}");
    assert_eq!(reactions[1].users, vec![a.username.clone()]);
    assert_eq!(reactions[1].count, 1);
    s.delete_message(m.id, a.id).await.unwrap();
    assert!(matches!(
        s.add_reaction(m.id, a.id, &e("👍"), 2).await,
        Err(StoreError::Conflict(_))
    ));
    let page = s.history(r.id, &HistoryQuery::default()).await.unwrap();
    assert!(page.messages[0].reactions.is_empty());
    // Deleting the room removes its messages' reactions (the foreign key cascades).
    s.delete_room(r.id).await.unwrap();
}

async fn room_lists_carry_the_newest_live_message(s: &Store) {
    let a = user(s, "alice").await;
    let b = user(s, "bob").await;
    let quiet = room(s, "quiet", RoomKind::Public, a.id).await;
    let busy = room(s, "busy", RoomKind::Public, a.id).await;
    let private = room(s, "secret", RoomKind::Private, a.id).await;
    s.add_member(busy.id, b.id, Role::Member).await.unwrap();
    post(s, &busy, &a, "first").await;
    post(s, &busy, &b, &format!("second {}", "é".repeat(150))).await;
    let newest = post(s, &busy, &a, "third").await;
    post(s, &private, &a, "hidden").await;
    // The newest deleted: the one before it shows.
    s.delete_message(newest.id, a.id).await.unwrap();
    let page = s
        .room_page(b.id, &list_query(RoomScope::Public, None))
        .await
        .unwrap();
    let find = |name: &str| {
        page.rooms
            .iter()
            .find(|r| r.room.name.as_str() == name)
            .unwrap()
            .clone()
    };
    let last = find("busy").last_message.unwrap();
    assert_eq!(last.sender, b.username);
    assert!(last.preview.starts_with("second "));
    assert_eq!(last.preview.chars().count(), 100);
    assert_eq!(find("quiet").last_message, None);
    assert_eq!(quiet.name.as_str(), "quiet");
    // The user's own rooms carry it too.
    let mine = s
        .room_page(a.id, &list_query(RoomScope::Member, None))
        .await
        .unwrap();
    let secret = mine.rooms.iter().find(|r| r.room.id == private.id).unwrap();
    assert_eq!(
        secret.last_message.as_ref().map(|m| m.preview.as_str()),
        Some("hidden")
    );
}

/// The search index follows the messages whatever state they are in when indexing catches up
/// (SQLite indexes new messages off the send path, above a watermark): a new message is found
/// at once (a search catches up first), an edit before or after indexing is found by its new
/// text and not its old, a deleted message is never found, indexed or not.
async fn search_finds_every_stored_message_edited_or_not_and_never_a_deleted_one(s: &Store) {
    let a = user(s, "alice").await;
    let r = room(s, "room", RoomKind::Public, a.id).await;
    let find = |word: &str| parley_store::SearchQuery {
        reader: a.id,
        terms: vec![word.to_owned()],
        room: None,
        before: None,
        limit: 50,
    };
    let ids = |page: parley_store::SearchPage| -> Vec<i64> {
        page.messages.iter().map(|m| m.id.get()).collect()
    };
    // Indexed: stored, then caught up by the heartbeat's call.
    let indexed_edit = post(s, &r, &a, "apple one").await;
    let indexed_gone = post(s, &r, &a, "apple two").await;
    s.catch_up_search_index().await.unwrap();
    // Not indexed yet: changed before any catch-up.
    let fresh_edit = post(s, &r, &a, "apple three").await;
    let fresh_gone = post(s, &r, &a, "apple four").await;
    let fresh = post(s, &r, &a, "apple five").await;
    for (m, text) in [(&indexed_edit, "banana one"), (&fresh_edit, "banana three")] {
        s.edit_message(m.id, a.id, &MessageBody::parse(text).unwrap())
            .await
            .unwrap();
    }
    for m in [&indexed_gone, &fresh_gone] {
        s.delete_message(m.id, a.id).await.unwrap();
    }
    assert_eq!(
        ids(s.search_messages(&find("apple")).await.unwrap()),
        [fresh.id.get()]
    );
    assert_eq!(
        ids(s.search_messages(&find("banana")).await.unwrap()),
        [fresh_edit.id.get(), indexed_edit.id.get()]
    );
    // Up to date now: nothing left to index, and an edit of the newest still applies.
    assert_eq!(s.catch_up_search_index().await.unwrap(), 0);
    s.edit_message(fresh.id, a.id, &MessageBody::parse("cherry five").unwrap())
        .await
        .unwrap();
    assert!(ids(s.search_messages(&find("apple")).await.unwrap()).is_empty());
    assert_eq!(
        ids(s.search_messages(&find("cherry")).await.unwrap()),
        [fresh.id.get()]
    );
    for word in ["two", "four"] {
        assert!(
            ids(s.search_messages(&find(word)).await.unwrap()).is_empty(),
            "{word}"
        );
    }
}

// --- the reads of a join (issue 19: a storm of joins) ---

/// `room_and_standing` (one query) answers exactly what `room_by_name` and `standing` do.
async fn a_room_and_a_standing_are_read_together_as_apart(s: &Store) {
    let owner = user(s, "owner").await;
    let member = user(s, "member").await;
    let troll = user(s, "troll").await;
    let loud = user(s, "loud").await;
    let quiet = user(s, "quiet").await;
    let stranger = user(s, "stranger").await;
    let lobby = room(s, "lobby", RoomKind::Public, owner.id).await;
    let other = room(s, "other", RoomKind::Public, owner.id).await;
    s.add_member(lobby.id, member.id, Role::Member)
        .await
        .unwrap();
    s.ban_from_room(lobby.id, troll.id, owner.id, None)
        .await
        .unwrap();
    let later = Timestamp(Timestamp::now().millis() + 60_000);
    for (who, until) in [(&loud, Some(later)), (&quiet, None)] {
        s.add_member(lobby.id, who.id, Role::Member).await.unwrap();
        s.mute_in_room(lobby.id, who.id, until, owner.id, None)
            .await
            .unwrap();
    }
    // Standing elsewhere must not leak into this room's row.
    s.ban_from_room(other.id, member.id, owner.id, None)
        .await
        .unwrap();
    s.mute_in_room(other.id, stranger.id, None, owner.id, None)
        .await
        .unwrap();
    let name = RoomName::parse("lobby").unwrap();
    for who in [&owner, &member, &troll, &loud, &quiet, &stranger] {
        let (found, standing) = s.room_and_standing(&name, who.id).await.unwrap();
        assert_eq!(found, s.room_by_name(&name).await.unwrap());
        assert_eq!(
            standing,
            s.standing(lobby.id, who.id).await.unwrap(),
            "{}",
            who.username
        );
    }
    let (_, loud_standing) = s.room_and_standing(&name, loud.id).await.unwrap();
    assert_eq!(loud_standing.mute.map(|m| m.until), Some(Some(later)));
    let (_, quiet_standing) = s.room_and_standing(&name, quiet.id).await.unwrap();
    assert_eq!(quiet_standing.mute.map(|m| m.until), Some(None));
    let (_, troll_standing) = s.room_and_standing(&name, troll.id).await.unwrap();
    assert!(troll_standing.banned && troll_standing.membership.is_none());
    let (_, owner_standing) = s.room_and_standing(&name, owner.id).await.unwrap();
    assert_eq!(owner_standing.membership.map(|m| m.role), Some(Role::Owner));
    assert!(matches!(
        s.room_and_standing(&RoomName::parse("nowhere").unwrap(), owner.id)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// A join's membership: added (again: no error), but taken back at once from a banned user.
async fn a_member_added_unless_banned_is_not_added_when_banned(s: &Store) {
    let owner = user(s, "owner").await;
    let fan = user(s, "fan").await;
    let troll = user(s, "troll").await;
    let lobby = room(s, "lobby", RoomKind::Public, owner.id).await;
    assert!(
        s.add_member_unless_banned(&lobby, fan.id, Role::Member)
            .await
            .unwrap()
    );
    assert!(
        s.add_member_unless_banned(&lobby, fan.id, Role::Member)
            .await
            .unwrap(),
        "already a member"
    );
    let standing = s.standing(lobby.id, fan.id).await.unwrap();
    assert_eq!(standing.membership.map(|m| m.role), Some(Role::Member));
    // The owner stays owner.
    assert!(
        s.add_member_unless_banned(&lobby, owner.id, Role::Member)
            .await
            .unwrap()
    );
    let standing = s.standing(lobby.id, owner.id).await.unwrap();
    assert_eq!(standing.membership.map(|m| m.role), Some(Role::Owner));
    // A ban committed after the caller's access check: the membership is not kept.
    s.ban_from_room(lobby.id, troll.id, owner.id, None)
        .await
        .unwrap();
    assert!(
        !s.add_member_unless_banned(&lobby, troll.id, Role::Member)
            .await
            .unwrap()
    );
    let standing = s.standing(lobby.id, troll.id).await.unwrap();
    assert!(standing.banned && standing.membership.is_none());
    // Direct rooms' members are fixed; a deleted room is `NotFound`.
    let direct = s.direct_room(owner.id, fan.id).await.unwrap();
    assert!(matches!(
        s.add_member_unless_banned(&direct, troll.id, Role::Member)
            .await,
        Err(StoreError::Invalid(_))
    ));
    s.delete_room(lobby.id).await.unwrap();
    assert!(matches!(
        s.add_member_unless_banned(&lobby, fan.id, Role::Member)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// The account read of authentication is never stale: deactivation, a raised token epoch
/// and deletion show at the next read.
async fn account_reads_for_auth_see_every_change_at_once(s: &Store) {
    let alice = user(s, "alice").await;
    let read = s.account_for_auth(alice.id).await.unwrap();
    assert_eq!(read, s.user_by_id(alice.id).await.unwrap());
    assert!(read.is_active);
    s.set_active(alice.id, false).await.unwrap();
    let read = s.account_for_auth(alice.id).await.unwrap();
    assert!(!read.is_active);
    assert!(read.token_epoch > alice.token_epoch);
    s.delete_user(alice.id).await.unwrap();
    assert!(matches!(
        s.account_for_auth(alice.id).await,
        Err(StoreError::NotFound(_))
    ));
}
