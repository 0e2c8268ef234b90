using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using VmClone.Disks.Tests.Support;
using VmClone.Fuzz;
using Xunit;

namespace VmClone.Disks.Tests;

/// <summary>
/// Replays through the fuzz harness (tests/VmClone.Fuzz/Harness, compiled into this project)
/// every input coverage-guided fuzzing ever failed on, kept under FuzzRegressions/&lt;target&gt;
/// (build.ps1 -Task Fuzz copies new crashes and hangs there), and every seed under
/// tests/VmClone.Fuzz/seeds/&lt;target&gt; with all of the harness's phases. Each must end in
/// success or the engine's own refusal (VirtualDiskException, DiskFormatException,
/// DiskChainException) within 30 s; anything else fails, naming the input. Inputs under
/// FuzzRegressions/pending still fail on the current engine and are not replayed until fixed
/// (then moved up into their target's folder).
/// </summary>
public class FuzzRegressionTests
{
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(30);

    private static string RepositoryRoot
    {
        get
        {
            string? dir = AppContext.BaseDirectory;
            while (dir is not null && !File.Exists(Path.Combine(dir, "VmClone.sln")))
                dir = Path.GetDirectoryName(dir);
            return dir ?? throw new InvalidOperationException($"No VmClone.sln above '{AppContext.BaseDirectory}'.");
        }
    }

    /// <summary>Folders replayed: (kind, target, folder relative to the repository).</summary>
    private static IEnumerable<(string Kind, FuzzTarget Target, string Folder)> Folders()
    {
        foreach (FuzzTarget target in Enum.GetValues<FuzzTarget>())
        {
            string name = target.ToString().ToLowerInvariant();
            yield return ("seed", target, Path.Combine("tests", "VmClone.Fuzz", "seeds", name));
            yield return ("regression", target, Path.Combine("tests", "VmClone.Disks.Tests", "FuzzRegressions", name));
        }
    }

    /// <summary>One row per input, named "kind target/file" (short enough to be shown whole).</summary>
    public static TheoryData<string> Inputs()
    {
        var data = new TheoryData<string>();
        foreach ((string kind, FuzzTarget target, string folder) in Folders())
        {
            string full = Path.Combine(RepositoryRoot, folder);
            if (!Directory.Exists(full))
                continue;
            foreach (string file in Directory.EnumerateFiles(full).Select(f => Path.GetFileName(f)).Where(f => !f.StartsWith('.')).OrderBy(f => f, StringComparer.Ordinal))
                data.Add($"{kind} {target.ToString().ToLowerInvariant()}/{file}");
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Inputs))]
    public async Task EndsInSuccessOrADiskError(string input)
    {
        string[] parts = input.Split(' ', '/');
        (string kind, FuzzTarget target, string folder) = Folders().Single(f => f.Kind == parts[0] && f.Target.ToString().ToLowerInvariant() == parts[1]);
        string path = Path.Combine(RepositoryRoot, folder, parts[2]);
        byte[] bytes = File.ReadAllBytes(path);

        // The harness runs on a worker so that a hang fails this test instead of the whole run.
        var run = Task.Run(() =>
        {
            using var harness = new FuzzHarness(target);
            harness.Run(bytes, allPhases: kind == "seed");
        });
        if (await Task.WhenAny(run, Task.Delay(HangGuard)) != run)
            Assert.Fail($"{path}: still running after {HangGuard.TotalSeconds} s (a hang)");
        if (run.Exception?.InnerException is Exception ex)
            Assert.Fail($"{path}: {ex.GetType().FullName}: {ex.Message}{Environment.NewLine}{ex.StackTrace}");
    }

    /// <summary>
    /// The harness's repair computes the checksums the engine writes (headers, region tables:
    /// byte-identical to an engine-made file) and accepts (log entries: the log is replayed),
    /// otherwise every mutated VHDX would stop at a checksum.
    /// </summary>
    [Fact]
    public void ChecksumRepairGivesTheChecksumsTheEngineWritesAndAccepts()
    {
        byte[] Broken(string seed, out byte[] original)
        {
            original = FuzzInput.DecodeFile(File.ReadAllBytes(Path.Combine(RepositoryRoot, "tests", "VmClone.Fuzz", "seeds", "vhdx", seed)));
            byte[] b = (byte[])original.Clone();
            var checksums = new List<int> { 64 * 1024 + 4, 128 * 1024 + 4, 192 * 1024 + 4, 256 * 1024 + 4 };
            for (int at = 1 << 20; at < 2 << 20; at += 4096)
            {
                if (b.AsSpan(at, 4).SequenceEqual("loge"u8))
                    checksums.Add(at + 4);
            }
            foreach (int at in checksums)
                b.AsSpan(at, 4).Fill(0xEE);
            ChecksumRepair.RepairVhdx(b);
            return b;
        }

        byte[] repaired = Broken("engine-dynamic", out byte[] written);
        Assert.True(written.AsSpan().SequenceEqual(repaired), "repaired header and region table checksums differ from the engine's");

        // The seed's second log entry writes the third 4 KiB of block 2 (2 MiB in): only a
        // replayed log shows data there.
        using var folder = new TempFolder();
        string path = folder.File("log.vhdx");
        File.WriteAllBytes(path, Broken("engine-dirty-log-sequence", out _));
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        byte[] sector = new byte[4096];
        disk.Content.Position = (2 << 20) + 8192;
        disk.Content.ReadExactly(sector, 0, sector.Length);
        Assert.True(sector.AsSpan().IndexOfAnyExcept((byte)0) >= 0, "the log with repaired checksums was not replayed");
    }

    [Fact]
    public void EveryTargetHasSeeds()
    {
        foreach ((string kind, FuzzTarget target, string folder) in Folders().Where(f => f.Kind == "seed"))
            Assert.True(Directory.EnumerateFiles(Path.Combine(RepositoryRoot, folder)).Any(), $"no seeds for {target} in {folder}");
    }
}
