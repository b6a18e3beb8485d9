package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/IBM/sarama"
)

// describeConnectError adds to an error of connecting to a broker what
// fixes it, when it is a refused authentication or an untrusted
// certificate: retrying those fails the same way.
func describeConnectError(err error) error {
	var (
		unknownCA *x509.UnknownAuthorityError
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
