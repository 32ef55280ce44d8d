package testutil

import "testing"

func TestPostgresStartsStopsStarts(t *testing.T) {
	pg := Postgres(t)
	if got := pg.Psql("-c", "SELECT current_user || ' ' || current_database()"); got != PostgresUser+" "+PostgresDB {
		t.Fatalf("psql says %q", got)
	}
	pg.Stop()
	pg.Start()
	if got := pg.Psql("-c", "SELECT 1"); got != "1" {
		t.Fatalf("after restart psql says %q", got)
	}
}
