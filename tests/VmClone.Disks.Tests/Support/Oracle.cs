using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using Xunit;

namespace VmClone.Disks.Tests.Support;

/// <summary>
/// The independent tools our files are judged by: qemu-img/qemu-io, vhdiinfo/pyvhdi,
/// vmdkinfo/pyvmdk. On a machine without them oracle tests are skipped with the reason,
/// except when CI=true: there a missing oracle fails the test.
/// </summary>
public static class Oracle
{
    /// <summary>Debian's python, which carries pyvhdi/pyvmdk (a pyenv python on PATH would not).</summary>
    public const string Python = "/usr/bin/python3";

    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static bool HasTool(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Any(dir => File.Exists(Path.Combine(dir, name)));

    public static bool HasPythonModule(string module)
    {
        if (!File.Exists(Python))
            return false;
        var (code, _, _) = Run(Python, $"-c \"import {module}\"", throwOnError: false);
        return code == 0;
    }

    /// <summary>Why an oracle-backed test cannot run here, or null when it can (or when CI must fail instead).</summary>
    public static string? SkipReason(string[] tools, string[] pythonModules)
    {
        if (IsCi)
            return null;
        var missing = tools.Where(t => !HasTool(t)).Concat(pythonModules.Where(m => !HasPythonModule(m)).Select(m => "python3-" + m)).ToList();
        return missing.Count == 0 ? null : "oracle missing on this machine: " + string.Join(", ", missing) + " (apt-get install qemu-utils python3-libvhdi python3-libvmdk libvhdi-utils libvmdk-utils)";
    }

    /// <summary>Runs a tool; throws with its output when it fails (and throwOnError).</summary>
    public static (int ExitCode, string StdOut, string StdErr) Run(string file, string arguments, bool throwOnError = true, int timeoutMs = 300_000)
    {
        var psi = new ProcessStartInfo(file, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"Cannot start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutMs))
        {
            p.Kill(true);
            throw new TimeoutException($"{file} {arguments} did not finish in {timeoutMs} ms");
        }
        p.WaitForExit();
        if (throwOnError && p.ExitCode != 0)
            throw new Xunit.Sdk.XunitException($"{file} {arguments} exited {p.ExitCode}:\n{stdout.Result}\n{stderr.Result}");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Runs a python3 script (Debian's python) with arguments; returns stdout.</summary>
    public static string RunPython(string script, params string[] args)
    {
        string file = Path.Combine(Path.GetTempPath(), "vmclone-oracle-" + Guid.NewGuid().ToString("N") + ".py");
        File.WriteAllText(file, script);
        try
        {
            string quoted = string.Join(" ", args.Select(a => "'" + a.Replace("'", "'\\''") + "'"));
            return Run("/bin/sh", $"-c \"{Python} '{file}' {quoted.Replace("\"", "\\\"")}\"").StdOut.Trim();
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>
    /// sha256 (lowercase hex) of the whole virtual content of a VHDX chain as libvhdi reads it:
    /// <paramref name="chain"/> from the base up to the disk to read, each linked to the one
    /// before with set_parent.
    /// </summary>
    public static string LibvhdiSha256(params string[] chain) => RunPython(
        "import sys, pyvhdi, hashlib\n" +
        "files = []\n" +
        "for p in sys.argv[1:]:\n  f = pyvhdi.file(); f.open(p); files.append(f)\n" +
        "for i in range(1, len(files)):\n  files[i].set_parent(files[i - 1])\n" +
        "top = files[-1]; h = hashlib.sha256(); n = top.get_media_size(); o = 0\n" +
        "while o < n:\n  d = top.read_buffer_at_offset(min(1 << 22, n - o), o); h.update(d); o += len(d)\n" +
        "print(h.hexdigest())\n", chain);

    /// <summary>
    /// libvhdi misreads a VHDX child whose sector bitmap blocks are all absent (it returns the
    /// child's own header at virtual offset 64 KiB): before libvhdi judges a new, empty child,
    /// the child gets a write of its own, 4 KiB of zeros at <paramref name="at"/>.
    /// </summary>
    public static void PrepareEmptyVhdxChildForLibvhdi(string child, long at)
    {
        using VirtualDisk disk = VirtualDisk.Open(child, FileAccess.ReadWrite);
        disk.Content.Position = at;
        disk.Content.Write(new byte[4096], 0, 4096);
    }

    /// <summary>sha256 (hex) of the whole virtual content of a disk according to qemu-img convert -O raw.</summary>
    public static string QemuRawSha256(string path, string? format = null)
    {
        string raw = Path.Combine(Path.GetTempPath(), "vmclone-qemu-" + Guid.NewGuid().ToString("N") + ".raw");
        try
        {
            string f = format is null ? "" : $"-f {format} ";
            Run("qemu-img", $"convert {f}-O raw '{path}' '{raw}'".Replace("'", "\""));
            return Hashing.Sha256File(raw);
        }
        finally
        {
            File.Delete(raw);
        }
    }
}

/// <summary>A fact that needs oracles: skipped with the reason where they are missing, never under CI=true.</summary>
public sealed class OracleFactAttribute : FactAttribute
{
    public OracleFactAttribute(string[]? tools = null, string[]? python = null)
    {
        string? reason = Oracle.SkipReason(tools ?? Array.Empty<string>(), python ?? Array.Empty<string>());
        if (reason is not null)
            Skip = reason;
    }
}

/// <summary>A theory that needs oracles; see <see cref="OracleFactAttribute"/>.</summary>
public sealed class OracleTheoryAttribute : TheoryAttribute
{
    public OracleTheoryAttribute(string[]? tools = null, string[]? python = null)
    {
        string? reason = Oracle.SkipReason(tools ?? Array.Empty<string>(), python ?? Array.Empty<string>());
        if (reason is not null)
            Skip = reason;
    }
}
