package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// describeConnectError adds to an error of connecting to a broker what
// fixes it, when it is a refused authentication or an untrusted
// certificate: retrying those fails the same way.
func describeConnectError(err error) error {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		recordHdr tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed):
		return fmt.Errorf("%w (SASL authentication refused: check sasl.mechanism, sasl.username and sasl.password)", err)
	case errors.Is(err, sarama.ErrUnsupportedSASLMechanism):
		return fmt.Errorf("%w (the broker does not enable this SASL mechanism on this listener: choose one its sasl.enabled.mechanisms lists)", err)
	case errors.As(err, &unknownCA):
		return fmt.Errorf("%w (the broker's certificate is not signed by a trusted CA: set tls.ca_file to the CA that signs it)", err)
	case errors.As(err, &hostname):
		return fmt.Errorf("%w (the broker's certificate does not name this host: set tls.server_name to a name it holds)", err)
	case errors.As(err, &invalid):
		return fmt.Errorf("%w (the broker's certificate is not valid: check its dates and usage, or tls.ca_file)", err)
	case errors.As(err, &recordHdr):
		return fmt.Errorf("%w (the broker's listener does not speak TLS: remove the tls section or use its TLS listener)", err)
	}
	return err
}

// apply sets sc's SASL settings: the mechanism, and the credentials or
// token provider it takes.
func (s *SASLConfig) apply(sc *sarama.Config) {
	sc.Net.SASL.Enable = true
	sc.Net.SASL.Handshake = true
	sc.Net.SASL.Version = sarama.SASLHandshakeV1
	sc.Net.SASL.Mechanism = sarama.SASLMechanism(s.Mechanism)
	switch s.Mechanism {
	case sarama.SASLTypeSCRAMSHA256:
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
	case sarama.SASLTypeSCRAMSHA512:
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
	case sarama.SASLTypeOAuth:
		sc.Net.SASL.TokenProvider = newTokenProvider(s)
		return
	}
	sc.Net.SASL.User = s.Username
	sc.Net.SASL.Password = s.Password
}

// scramClient is one SCRAM conversation, as sarama drives it.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

var _ sarama.SCRAMClient = (*scramClient)(nil)

// Begin starts a conversation for user with password.
func (c *scramClient) Begin(user, password, authzID string) error {
	client, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return fmt.Errorf("scram: %w", err)
	}
	c.conv = client.NewConversation()
	return nil
}

// Step answers the broker's challenge.
func (c *scramClient) Step(challenge string) (string, error) {
	return c.conv.Step(challenge)
}

// Done reports whether the conversation is over.
func (c *scramClient) Done() bool { return c.conv.Done() }

// tokenProvider gives OAUTHBEARER its access token: a fixed one, one read
// from a file at each connection, or one asked of a token endpoint with
// the client credentials grant, kept until shortly before it expires.
type tokenProvider struct {
	token      string
	file       string
	source     oauth2.TokenSource
	extensions map[string]string
}

var _ sarama.AccessTokenProvider = (*tokenProvider)(nil)

func newTokenProvider(s *SASLConfig) *tokenProvider {
	p := &tokenProvider{token: s.Token, file: s.TokenFile, extensions: s.Extensions}
	if s.TokenURL != "" {
		cc := clientcredentials.Config{ClientID: s.ClientID, ClientSecret: s.ClientSecret, TokenURL: s.TokenURL, Scopes: s.Scopes}
		// ReuseTokenSource refreshes a token 10s before it expires.
		p.source = oauth2.ReuseTokenSource(nil, cc.TokenSource(context.Background()))
	}
	return p
}

// Token returns the access token to authenticate a connection with.
func (p *tokenProvider) Token() (*sarama.AccessToken, error) {
	token := p.token
	switch {
	case p.file != "":
		b, err := os.ReadFile(p.file)
		if err != nil {
			return nil, fmt.Errorf("read sasl.token_file: %w", err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return nil, fmt.Errorf("sasl.token_file %s is empty; it should hold the access token", p.file)
		}
	case p.source != nil:
		t, err := p.source.Token()
		if err != nil {
			var re *oauth2.RetrieveError
			if errors.As(err, &re) && re.Response != nil {
				// Its message holds the endpoint's whole answer.
				return nil, fmt.Errorf("get an access token from sasl.token_url: the endpoint answered %s %s (check client_id, client_secret and scopes)", re.Response.Status, re.ErrorCode)
			}
			return nil, fmt.Errorf("get an access token from sasl.token_url: %w", err)
		}
		token = t.AccessToken
	}
	return &sarama.AccessToken{Token: token, Extensions: p.extensions}, nil
}
