using System.Text.Json;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Qcow2;

/// <summary>What `qemu-img check` says of an image.</summary>
internal static class Qcow2Check
{
    /// <summary>Exit code, corruptions and leaks of `qemu-img check --output=json`.</summary>
    public static (int Exit, long Corruptions, long Leaks, string Output) Run(string path)
    {
        var (code, stdout, stderr) = Oracle.Run("qemu-img", $"check --output=json \"{path}\"", throwOnError: false);
        long corruptions = 0, leaks = 0;
        if (stdout.TrimStart().StartsWith("{"))
        {
            JsonElement check = JsonDocument.Parse(stdout).RootElement;
            if (check.TryGetProperty("corruptions", out JsonElement c))
                corruptions = c.GetInt64();
            if (check.TryGetProperty("leaks", out JsonElement l))
                leaks = l.GetInt64();
        }
        return (code, corruptions, leaks, stdout + stderr);
    }

    public static void AssertClean(string path)
    {
        var (exit, corruptions, leaks, output) = Run(path);
        Assert.True(exit == 0 && corruptions == 0 && leaks == 0, $"qemu-img check of {path}: exit {exit}, {corruptions} corruptions, {leaks} leaks\n{output}");
    }
}
