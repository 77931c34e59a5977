package config

import (
	"fmt"
	"os"
	"strings"
)

// MinTokenLen is the shortest bearer token a token file may hold, in
// bytes: a shorter one can be guessed (`openssl rand -hex 16` makes 32).
const MinTokenLen = 16

// ReadTokenFile reads the API bearer token a file holds (--token-file, an
// api.tokens entry's file) and checks the file. It refuses a file group
// or others may write (whoever can write it chooses a token of the role
// it grants), and a token shorter than MinTokenLen; warn is set when
// group or others may read it. Errors and warn name the file, never the
// token.
func ReadTokenFile(path string) (token, warn string, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", "", err
	}
	if !fi.Mode().IsRegular() {
		return "", "", fmt.Errorf("%s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return "", "", fmt.Errorf("%s: writable by group or others (mode %04o): whoever can write it chooses the token; chmod 600 it", path, perm)
	} else if perm&0o044 != 0 {
		warn = fmt.Sprintf("%s: readable by group or others (mode %04o): whoever can read it holds the token; chmod 600 it", path, perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	token = strings.TrimSpace(string(b))
	switch {
	case token == "":
		return "", "", fmt.Errorf("%s: empty", path)
	case len(token) < MinTokenLen:
		return "", "", fmt.Errorf("%s: the token is %d bytes, too short to be secret: at least %d (openssl rand -hex 16)", path, len(token), MinTokenLen)
	}
	return token, warn, nil
}
