// nodeup's systemd syntax: the exact text of command lines and environment
// files. test/e2e/systemd-syntax.test.ts checks the same encodings against a
// booted systemd; this pins what is written.
import t from 'tap';
import { environmentFile, envRef, execCommand, SystemdSyntaxError } from '../../agents/nodeup/model/systemd-syntax.js';
import { kubeletCommand, kubeletEnvironment } from '../../agents/nodeup/model/kubelet.js';
import type { ModelInput } from '../../agents/nodeup/model/context.js';

t.test('command lines: plain words as they are, the rest double-quoted with $ and % doubled', async (t) => {
  t.equal(execCommand(['/usr/local/bin/kubelet', '--config=/var/lib/kubelet/config.yaml', '-v', 'a,b=c:d@e+f']), '/usr/local/bin/kubelet --config=/var/lib/kubelet/config.yaml -v a,b=c:d@e+f');
  t.equal(execCommand(['/bin/x', 'two words']), '/bin/x "two words"');
  t.equal(execCommand(['/bin/x', '$HOME', '${HOME}', '100%', '%n']), '/bin/x "$$HOME" "$${HOME}" "100%%" "%%n"');
  t.equal(execCommand(['/bin/x', 'a"b', 'c\\d', "it's", '`id`']), '/bin/x "a\\"b" "c\\\\d" "it\'s" "`id`"');
  t.equal(execCommand(['/bin/x', ';', '', 'a\nb', 'a\tb', '\x01', '\x7f']), '/bin/x ";" "" "a\\nb" "a\\tb" "\\x01" "\\x7f"');
  t.equal(execCommand(['/opt/containerd-1.7 x/bin/containerd']), '"/opt/containerd-1.7 x/bin/containerd"', 'a program path with a blank is quoted');
  t.equal(execCommand(['/opt/a$HOME%n/bin/x', '$HOME%n']), '/opt/a$HOME%%n/bin/x "$$HOME%%n"', "systemd never expands the program path: its '$' stays single");
  t.equal(execCommand(['/bin/x', ['--node-labels=', envRef('KUBELET_NODE_LABELS')], envRef('A')]), '/bin/x "--node-labels=${KUBELET_NODE_LABELS}" "${A}"');
  t.equal(execCommand(['/bin/x', ['--a=$', envRef('B'), '%']]), '/bin/x "--a=$$${B}%%"', 'literals next to a variable stay literal');
});

t.test('command lines refuse what systemd would read differently', async (t) => {
  t.throws(() => execCommand(['kubelet']), SystemdSyntaxError, 'a relative program');
  t.throws(() => execCommand(['-/bin/x']), /absolute path/, "a leading '-' is systemd's own prefix");
  t.throws(() => execCommand([envRef('X')]), /absolute path/);
  t.throws(() => execCommand(['/bin/x', 'a\0b']), /NUL/);
  for (const path of ['/bin/"x"', "/bin/'x'", '/bin/x\\y', '/bin/x\ny', '/bin/x\ty']) {
    t.throws(() => execCommand([path]), /systemd refuses a program path/, JSON.stringify(path));
  }
  t.throws(() => envRef('A B'), /not an environment variable name/);
  t.throws(() => execCommand(['/bin/x', { env: '1X' }]), /not an environment variable name/);
});

t.test('environment files: NAME=value, quoted only where needed, control characters refused', async (t) => {
  t.equal(environmentFile('Written by nodeup.', { A: 'plain/value:1,2=3', B: 42 }), '# Written by nodeup.\nA=plain/value:1,2=3\nB=42\n');
  t.equal(
    environmentFile('two\nlines', { A: 'two words', B: '', C: 'a"b\\c$d`e', D: "it's #1", E: 'line1\nline2', F: 'tab\there', G: ' padded ' }),
    '# two\n# lines\nA="two words"\nB=""\nC="a\\"b\\\\c\\$d\\`e"\nD="it\'s #1"\nE="line1\nline2"\nF="tab\there"\nG=" padded "\n',
  );
  t.throws(() => environmentFile('x', { 'A B': '1' }), /not an environment variable name/);
  t.throws(() => environmentFile('x', { A: 'carriage\rreturn' }), /A: a control character/);
  t.throws(() => environmentFile('x', { A: 'nul\0' }), /control character/);
});

t.test("kubelet's labels: one variable, passed as one argument, whatever a value holds", async (t) => {
  const node = { kubernetesVersion: '1.34.10', instanceGroupRole: 'Node', serviceClusterIPRange: '100.64.0.0/13', kubelet: {} };
  const input = { nodeConfig: { ...node, nodeLabels: { workload: 'a --authorization-mode=AlwaysAllow --anonymous-auth=true', role: '$x "y"' } } } as unknown as ModelInput;
  t.equal(kubeletEnvironment(input), '# Written by nodeup. kubelet.service passes each value as one argument.\nKUBELET_NODE_LABELS="workload=a --authorization-mode=AlwaysAllow --anonymous-auth=true,role=\\$x \\"y\\""\n');
  t.equal(kubeletCommand(input), '/usr/local/bin/kubelet --kubeconfig=/var/lib/kubelet/kubeconfig --runtime-request-timeout=15m0s --config=/var/lib/kubelet/config.yaml "--node-labels=${KUBELET_NODE_LABELS}"');
  const none = { nodeConfig: { ...node, nodeLabels: {} } } as unknown as ModelInput;
  t.equal(kubeletCommand(none), '/usr/local/bin/kubelet --kubeconfig=/var/lib/kubelet/kubeconfig --runtime-request-timeout=15m0s --config=/var/lib/kubelet/config.yaml', 'no labels, no flag');
  t.equal(kubeletEnvironment(none), '# Written by nodeup. kubelet.service passes each value as one argument.\n');
  // A spec value that reaches a flag is one argument too, whatever it holds.
  const spec = { nodeConfig: { ...node, nodeLabels: {}, kubelet: { hostnameOverride: 'n1 --anonymous-auth=true $HOME %n' } } } as unknown as ModelInput;
  t.equal(kubeletCommand(spec), '/usr/local/bin/kubelet "--hostname-override=n1 --anonymous-auth=true $$HOME %%n" --kubeconfig=/var/lib/kubelet/kubeconfig --runtime-request-timeout=15m0s --config=/var/lib/kubelet/config.yaml');
});
