using System.Collections.Generic;
using System.Linq;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Contract;

/// <summary>
/// The formats the chain contract runs for: every registered format that VmClone writes and
/// that can have a parent (the registry decides; a new row is covered without a test of its
/// own), and the independent tool each is judged by where one exists.
/// </summary>
public static class ContractFormats
{
    /// <summary>Every writable format with a parent, as theory data.</summary>
    public static IEnumerable<object[]> WithParent() =>
        DiskFormats.All.Where(f => f.CanWrite && f.CanHaveParent).Select(f => new object[] { f.Format });

    /// <summary>The tools the oracle judgments need, for every format that has one.</summary>
    public static readonly string[] OracleTools = { "qemu-img" };

    /// <summary>The python modules the oracle judgments need.</summary>
    public static readonly string[] OraclePython = { "pyvhdi" };

    /// <summary>
    /// The sha256 of a chain's content as the format's oracle reads it (<paramref name="chain"/>
    /// from the base up), after the oracle's own consistency check; null for a format no oracle
    /// is listed for here (a new format adds its line).
    /// </summary>
    public static string? OracleSha256(DiskFormat format, IReadOnlyList<string> chain)
    {
        switch (format)
        {
            case DiskFormat.Vmdk:
                (int code, string output) = VmdkOracle.QemuCheck(chain[^1]);
                Assert.True(code == 0, "qemu-img check: " + output);
                return Oracle.QemuRawSha256(chain[^1], "vmdk");
            case DiskFormat.Vhdx:
                return Oracle.LibvhdiSha256(chain.ToArray());
            case DiskFormat.Vhd:
                // qemu reads a dynamic VHD but not a differencing one (it ignores the parent):
                // libvhdi judges every chain, qemu-img a disk without a parent as well.
                string libvhdi = Oracle.LibvhdiSha256(chain.ToArray());
                if (chain.Count == 1)
                    Assert.Equal(libvhdi, Oracle.QemuRawSha256(chain[0], "vpc"));
                return libvhdi;
            case DiskFormat.Qcow2:
                foreach (string layer in chain)
                    AssertQemuCheckClean(layer, "qcow2");
                return Oracle.QemuRawSha256(chain[^1], "qcow2");
            default:
                return null;
        }
    }

    /// <summary>
    /// `qemu-img check` of one file finds 0 corruptions and 0 leaks (its exit code is 0 only
    /// without corruptions; leaks are read from its report).
    /// </summary>
    public static void AssertQemuCheckClean(string path, string format)
    {
        var (code, stdout, stderr) = Oracle.Run("qemu-img", $"check -f {format} --output=json \"{path}\"", throwOnError: false);
        long corruptions = -1, leaks = -1;
        if (stdout.TrimStart().StartsWith("{", System.StringComparison.Ordinal))
        {
            System.Text.Json.JsonElement report = System.Text.Json.JsonDocument.Parse(stdout).RootElement;
            corruptions = report.TryGetProperty("corruptions", out var c) ? c.GetInt64() : 0;
            leaks = report.TryGetProperty("leaks", out var l) ? l.GetInt64() : 0;
        }
        Assert.True(code == 0 && corruptions == 0 && leaks == 0,
            $"qemu-img check of {path}: exit {code}, {corruptions} corruptions, {leaks} leaks\n{stdout}{stderr}");
    }

    public static string Extension(DiskFormat format) => DiskFormats.Get(format, format.ToString()).DefaultExtension;

    /// <summary>Small allocation units, so a few MiB hold many of them.</summary>
    public static DiskCreateOptions Create(DiskFormat format) =>
        new() { Format = format, BlockSizeBytes = format == DiskFormat.Vhdx ? 1L << 20 : null };
}
