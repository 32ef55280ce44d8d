package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/furrow-io/furrow/internal/auth"
)

// runAdmin is `furrow admin new-token` (a random API token and the hash
// for admin.auth.token_hashes) and `furrow admin hash-token` (the hash of
// a token read from standard input, so it stays out of the shell's
// history and the process list).
func runAdmin(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: furrow admin new-token | furrow admin hash-token < token-file")
	}
	switch args[0] {
	case "new-token":
		tok, err := auth.NewToken()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "token: %s\nhash:  %s\n# give the token to the API's owner; put the hash under admin.auth.token_hashes\n", tok, auth.HashToken(tok))
		return nil
	case "hash-token":
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		tok := strings.TrimSpace(line)
		if tok == "" {
			return errors.New("furrow admin hash-token: no token on standard input")
		}
		fmt.Fprintln(stdout, auth.HashToken(tok))
		return nil
	}
	return fmt.Errorf("furrow admin: unknown command %q (new-token, hash-token)", args[0])
}
