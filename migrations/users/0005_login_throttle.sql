-- Login throttling per account *and* client (the client's IP as the host
-- reports it): one client's failures never delay the owner on another, so
-- nobody can keep an account locked by guessing slowly. An attempt is
-- counted before the password is checked, under the row's lock, so
-- parallel guesses cannot slip through between check and record.
DROP TABLE login_failures;
CREATE TABLE login_throttle (
    email           text NOT NULL,
    client          text NOT NULL,
    failures        integer NOT NULL,
    last_failure_at timestamptz NOT NULL,
    PRIMARY KEY (email, client)
);
