DROP TABLE guest_bans;
