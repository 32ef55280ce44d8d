package testutil

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaLibsEnv names the environment variable with the directory of the
// Kafka jars that test/kafka/fetch.sh puts there; unset, it is
// DefaultKafkaLibs under the home directory.
const KafkaLibsEnv = "FURROW_KAFKA_LIBS"

// DefaultKafkaLibs is where test/kafka/fetch.sh puts the jars, under the
// home directory.
const DefaultKafkaLibs = ".cache/furrow/kafka-4.4.0/libs"

// kafkaReadyTimeout bounds how long Kafka and Start wait for the broker
// to answer.
const kafkaReadyTimeout = 60 * time.Second

// JVM flags: a small heap and the serial collector start fastest on the
// 2 cores of the test machines; C1 only, as the tests are short.
var (
	kafkaBrokerJVM = []string{"-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Djava.awt.headless=true"}
	kafkaToolJVM = []string{"-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Djava.awt.headless=true"}
)

// Kafka's main classes in the 4.4.0 jars.
const (
	kafkaMain            = "kafka.Kafka"
	kafkaStorageTool     = "kafka.tools.StorageTool"
	kafkaConsoleConsumer = "org.apache.kafka.tools.consumer.ConsoleConsumer"
	kafkaConsoleProducer = "org.apache.kafka.tools.ConsoleProducer"
)

// KafkaBroker is a throwaway Apache Kafka 4.4.0 broker: one node in KRaft
// mode (broker and controller in one JVM) listening on 127.0.0.1 only, on
// free ports, with its log directory, configuration and log file in a
// temporary directory.
type KafkaBroker struct {
	t        testing.TB
	javaPath string
	libs     string // directory of the jars
	dir      string // server.properties, log4j2 configs, broker.log, data/
	port     int    // PLAINTEXT listener, for clients
	saslPort int    // SASL_PLAINTEXT listener (PLAIN), for clients
	tlsPort  int    // SSL listener, client certificates required
	ctrlPort int    // CONTROLLER listener

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Kafka starts a throwaway Kafka broker for the test and kills it and
// removes its files at cleanup. It runs the jars that test/kafka/fetch.sh
// fetches (from $FURROW_KAFKA_LIBS, else ~/.cache/furrow/kafka-4.4.0/libs)
// with java from PATH or $JAVA_HOME; without either the test fails,
// saying what to install. Topics are not created automatically: see
// CreateTopic.
func Kafka(t testing.TB) *KafkaBroker {
	t.Helper()
	libs, err := kafkaLibs()
	if err != nil {
		t.Fatal(err)
	}
	java, err := javaBin()
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir first: cleanups run last in first out, so the broker is
	// killed before its directory is removed.
	k := &KafkaBroker{t: t, javaPath: java, libs: libs, dir: t.TempDir()}
	t.Cleanup(k.kill)
	k.port = FreePort(t)
	for k.ctrlPort = FreePort(t); k.ctrlPort == k.port; k.ctrlPort = FreePort(t) {
	}
	for k.saslPort = FreePort(t); k.saslPort == k.port || k.saslPort == k.ctrlPort; k.saslPort = FreePort(t) {
	}
	for k.tlsPort = FreePort(t); k.tlsPort == k.port || k.tlsPort == k.ctrlPort || k.tlsPort == k.saslPort; k.tlsPort = FreePort(t) {
	}
	k.writeTLS()
	k.writeConfig()
	id, err := kafkaClusterID()
	if err != nil {
		t.Fatal(err)
	}
	cmd := k.java(kafkaToolJVM, "log4j2-tool.properties", kafkaStorageTool, "format", "-t", id, "-c", k.path("server.properties"), "--standalone")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("format the Kafka storage (%s): %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	k.Start()
	return k
}

// KafkaSASLUser and KafkaSASLPassword are the one user the broker's SASL
// listener (SASLAddr) knows, with the PLAIN mechanism.
const (
	KafkaSASLUser     = "furrow"
	KafkaSASLPassword = "furrow-kafka-secret"
)

// SASLAddr is the host:port of the broker's SASL_PLAINTEXT listener,
// which takes KafkaSASLUser with KafkaSASLPassword (PLAIN) only.
func (k *KafkaBroker) SASLAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(k.saslPort))
}

// Addr is the host:port of the broker's PLAINTEXT listener (the same
// across Stop, Kill and Start).
func (k *KafkaBroker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(k.port)) }

// CreateTopic creates topic name with the given number of partitions
// (replication factor 1); the test fails if the broker refuses.
func (k *KafkaBroker) CreateTopic(name string, partitions int) {
	k.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addr()))
	if err != nil {
		k.t.Fatalf("kafka client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(partitions), 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		k.t.Fatalf("create Kafka topic %q with %d partitions: %v", name, partitions, err)
	}
}

// Start starts the broker (again, after Stop or Kill) on the same log
// directory and ports, and waits until it answers metadata requests
// listing itself.
func (k *KafkaBroker) Start() {
	k.t.Helper()
	if k.running() {
		k.t.Fatal("Kafka broker: Start while it is running")
	}
	logf, err := os.OpenFile(k.path("broker.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		k.t.Fatal(err)
	}
	fmt.Fprintf(logf, "==== furrow testutil: starting the broker at %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := k.java(kafkaBrokerJVM, "log4j2-broker.properties", kafkaMain, k.path("server.properties"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		k.t.Fatalf("start the Kafka broker (%s): %v", strings.Join(cmd.Args, " "), err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	k.cmd, k.done = cmd, done
	if err := k.waitReady(); err != nil {
		k.kill()
		k.t.Fatalf("Kafka broker on %s: %v\nbroker log (%s):\n%s", k.Addr(), err, k.path("broker.log"), k.log())
	}
}

// Stop stops the broker with SIGTERM (a controlled shutdown) and waits
// for it to exit; Start brings it back.
func (k *KafkaBroker) Stop() {
	k.t.Helper()
	if !k.running() {
		return
	}
	k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(kafkaReadyTimeout):
		k.kill()
		k.t.Fatalf("Kafka broker did not stop within %v of SIGTERM; killed\nbroker log:\n%s", kafkaReadyTimeout, k.log())
	}
}

// Kill kills the broker with SIGKILL (a crash: nothing is flushed) and
// waits for it to exit; Start brings it back.
func (k *KafkaBroker) Kill() {
	k.t.Helper()
	k.kill()
}

func (k *KafkaBroker) kill() {
	if !k.running() {
		return
	}
	k.cmd.Process.Kill()
	<-k.done
}

func (k *KafkaBroker) running() bool {
	if k.done == nil {
		return false
	}
	select {
	case <-k.done:
		return false
	default:
		return true
	}
}

// ConsoleConsume reads up to n records of topic from the beginning with
// Kafka's own console consumer (a client independent of franz-go) and
// returns their values as it prints them, one per line (so values must not
// hold newlines; a null value prints as null). It stops after n records,
// or once no record came for timeout: then it returns fewer than n. The
// test fails if the tool does.
func (k *KafkaBroker) ConsoleConsume(topic string, n int, timeout time.Duration) []string {
	k.t.Helper()
	out := k.tool(nil, timeout, kafkaConsoleConsumer, "--bootstrap-server", k.Addr(), "--topic", topic,
		"--from-beginning", "--max-messages", strconv.Itoa(n), "--timeout-ms", strconv.FormatInt(timeout.Milliseconds(), 10))
	if out == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
}

// ConsoleProduce writes lines to topic with Kafka's own console producer,
// one record per line (values only, no key; acks=all), and returns once
// the producer has exited; the test fails if it does not succeed.
func (k *KafkaBroker) ConsoleProduce(topic string, lines []string) {
	k.t.Helper()
	var in bytes.Buffer
	for _, l := range lines {
		if strings.ContainsAny(l, "\r\n") {
			k.t.Fatalf("ConsoleProduce: line %q holds a line break", l)
		}
		in.WriteString(l + "\n")
	}
	k.tool(&in, 30*time.Second, kafkaConsoleProducer, "--bootstrap-server", k.Addr(), "--topic", topic,
		"--request-required-acks", "all")
}

// tool runs a Kafka command-line class with stdin and returns its
// standard output; the test fails if it exits non-zero or runs longer
// than timeout plus time to start a JVM, or if it logged an error other
// than the console consumer's timeout.
func (k *KafkaBroker) tool(stdin *bytes.Buffer, timeout time.Duration, class string, args ...string) string {
	k.t.Helper()
	limit := timeout + 60*time.Second
	cmd := k.java(kafkaToolJVM, "log4j2-tool.properties", class, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Start()
	if err == nil {
		timer := time.AfterFunc(limit, func() { cmd.Process.Kill() })
		err = cmd.Wait()
		if !timer.Stop() {
			err = fmt.Errorf("still running after %v: killed (%v)", limit, err)
		}
	}
	if err == nil {
		err = toolError(stderr.String())
	}
	if err != nil {
		k.t.Fatalf("%s %s: %v\nstderr:\n%s\nstdout:\n%s", class, strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String()
}

// toolError finds an ERROR line in a tool's log other than the console
// consumer's "no record for timeout-ms" (logged as a TimeoutException).
func toolError(log string) error {
	lines := strings.Split(log, "\n")
	for i, l := range lines {
		if !strings.Contains(l, "] ERROR ") {
			continue
		}
		if strings.Contains(l, "terminating consumer process") && i+1 < len(lines) &&
			strings.TrimSpace(lines[i+1]) == "org.apache.kafka.common.errors.TimeoutException" {
			continue
		}
		return errors.New(strings.TrimSpace(l))
	}
	return nil
}

// java is a command running class from the Kafka jars in the broker's
// directory, with JVM flags jvm and the log4j2 configuration file
// logConfig there.
func (k *KafkaBroker) java(jvm []string, logConfig, class string, args ...string) *exec.Cmd {
	argv := slices.Concat(jvm, []string{"-Dlog4j2.configurationFile=" + k.path(logConfig),
		"-cp", filepath.Join(k.libs, "*"), class}, args)
	cmd := exec.Command(k.javaPath, argv...)
	cmd.Dir = k.dir
	// The JVM dies with the test binary, even if that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// waitReady waits until the broker answers a metadata request that lists
// it, or it exits, or kafkaReadyTimeout passes.
func (k *KafkaBroker) waitReady() error {
	deadline := time.Now().Add(kafkaReadyTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-k.done:
			return fmt.Errorf("the broker exited (%v) before it was ready", k.cmd.ProcessState)
		default:
		}
		if last = k.ping(); last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready within %v: %v", kafkaReadyTimeout, last)
}

func (k *KafkaBroker) ping() error {
	c, err := net.DialTimeout("tcp", k.Addr(), time.Second)
	if err != nil {
		return err
	}
	c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addr()), kgo.RequestRetries(0))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	brokers, err := kadm.NewClient(cl).ListBrokers(ctx)
	if err != nil {
		return err
	}
	if len(brokers) != 1 || brokers[0].NodeID != 1 || int(brokers[0].Port) != k.port {
		return fmt.Errorf("metadata lists brokers %v, not node 1 on port %d", brokers, k.port)
	}
	return nil
}

func (k *KafkaBroker) path(name string) string { return filepath.Join(k.dir, name) }

// log is the broker's log file, its last 200 lines.
func (k *KafkaBroker) log() string {
	b, err := os.ReadFile(k.path("broker.log"))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) > 200 {
		lines = append([]string{"..."}, lines[len(lines)-200:]...)
	}
	return strings.Join(lines, "\n")
}

// writeConfig writes the KRaft configuration of a single node that is
// both broker and controller, and the log4j2 configurations: the broker
// logs at INFO to its standard output (broker.log), the tools log
// warnings to standard error, leaving standard output to the records.
func (k *KafkaBroker) writeConfig() {
	k.t.Helper()
	broker := fmt.Sprintf("127.0.0.1:%d", k.port)
	sasl := fmt.Sprintf("127.0.0.1:%d", k.saslPort)
	ctrl := fmt.Sprintf("127.0.0.1:%d", k.ctrlPort)
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", k.tlsPort)
	server := strings.Join([]string{
		"process.roles=broker,controller",
		"node.id=1",
		"controller.quorum.bootstrap.servers=" + ctrl,
		"listeners=PLAINTEXT://" + broker + ",SASL://" + sasl + ",SSL://" + tlsAddr + ",CONTROLLER://" + ctrl,
		"advertised.listeners=PLAINTEXT://" + broker + ",SASL://" + sasl + ",SSL://" + tlsAddr + ",CONTROLLER://" + ctrl,
		"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL:SASL_PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT",
		"listener.name.ssl.ssl.keystore.type=PEM",
		"listener.name.ssl.ssl.keystore.location=" + k.path("tls/broker.pem"),
		"listener.name.ssl.ssl.truststore.type=PEM",
		"listener.name.ssl.ssl.truststore.location=" + k.path("tls/ca.pem"),
		"listener.name.ssl.ssl.client.auth=required",
		"listener.name.sasl.sasl.enabled.mechanisms=PLAIN",
		`listener.name.sasl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_` + KafkaSASLUser + `="` + KafkaSASLPassword + `";`,
		"controller.listener.names=CONTROLLER",
		"inter.broker.listener.name=PLAINTEXT",
		"log.dirs=" + k.path("data"),
		"num.partitions=1",
		"offsets.topic.replication.factor=1",
		"offsets.topic.num.partitions=1",
		"transaction.state.log.replication.factor=1",
		"transaction.state.log.min.isr=1",
		"transaction.state.log.num.partitions=1",
		"share.coordinator.state.topic.replication.factor=1",
		"share.coordinator.state.topic.min.isr=1",
		"share.coordinator.state.topic.num.partitions=1",
		"auto.create.topics.enable=false",
		"group.initial.rebalance.delay.ms=0",
		// After a kill the controller keeps the dead broker's
		// registration until its session times out (9 s by default):
		// a short session lets Start re-register at once.
		"broker.session.timeout.ms=2000",
		"broker.heartbeat.interval.ms=500",
		"",
	}, "\n")
	logConfig := func(level, target string) string {
		return strings.Join([]string{
			"status = warn",
			"appender.out.type = Console",
			"appender.out.name = out",
			"appender.out.target = " + target,
			"appender.out.layout.type = PatternLayout",
			"appender.out.layout.pattern = [%d] %p %m (%c)%n",
			"rootLogger.level = " + level,
			"rootLogger.appenderRef.out.ref = out",
			"",
		}, "\n")
	}
	for name, text := range map[string]string{
		"server.properties":        server,
		"log4j2-broker.properties": logConfig("info", "SYSTEM_OUT"),
		"log4j2-tool.properties":   logConfig("warn", "SYSTEM_ERR"),
	} {
		if err := os.WriteFile(k.path(name), []byte(text), 0o644); err != nil {
			k.t.Fatal(err)
		}
	}
}

// kafkaLibs finds the directory of the Kafka jars that
// test/kafka/fetch.sh completed.
func kafkaLibs() (string, error) {
	dir := os.Getenv(KafkaLibsEnv)
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no home directory for the Kafka jars (set %s): %v", KafkaLibsEnv, err)
		}
		dir = filepath.Join(home, DefaultKafkaLibs)
	}
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err != nil {
		return "", fmt.Errorf("the Apache Kafka 4.4.0 jars are not in %s (no .complete marker): run test/kafka/fetch.sh "+
			"(it fetches them with Maven; .ci/run does) or set %s to where it put them; the Kafka tests need a real broker", dir, KafkaLibsEnv)
	}
	return dir, nil
}

// javaBin finds java on PATH, else in $JAVA_HOME/bin.
func javaBin() (string, error) {
	if p, err := exec.LookPath("java"); err == nil {
		return p, nil
	}
	if home := os.Getenv("JAVA_HOME"); home != "" {
		p := filepath.Join(home, "bin", "java")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("java not found on PATH or in $JAVA_HOME/bin: install a Java 17 runtime " +
		"(Debian package openjdk-17-jre-headless: apt-get install openjdk-17-jre-headless); the Kafka tests run a real broker")
}

// kafkaClusterID is a random Kafka cluster id, as kafka-storage
// random-uuid prints it: 16 bytes in unpadded URL-safe base64, not
// starting with '-' (which a command line would take for a flag).
func kafkaClusterID() (string, error) {
	for {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		if id := base64.RawURLEncoding.EncodeToString(b[:]); id[0] != '-' {
			return id, nil
		}
	}
}
