using System;
using System.IO;
using SharpFuzz;

namespace VmClone.Fuzz;

/// <summary>
/// The fuzz driver. Under afl-fuzz (build.ps1 -Task Fuzz): <c>VmClone.Fuzz vhdx|vmdk|vhd|qcow2|chain</c>
/// serves one input after another through SharpFuzz's out-of-process server, which restarts
/// the worker when an input hangs (afl-fuzz -t) or kills it, so hangs are recorded instead of
/// stopping the run. By hand: <c>replay TARGET [--all-phases] FILE...</c> runs inputs once and prints what
/// each did; <c>decode TARGET FILE FOLDER</c> writes the disk files an input stands for;
/// <c>seeds FOLDER</c> writes the seed inputs (engine-made files, and qemu-img-made
/// ones when qemu-img is installed).
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length == 1 && TryTarget(args[0], out FuzzTarget target))
        {
            Serve(target);
            return 0;
        }
        if (args.Length >= 3 && args[0] == "replay" && TryTarget(args[1], out target))
        {
            bool all = args[2] == "--all-phases";
            return Replay(target, args.AsSpan(all ? 3 : 2).ToArray(), all);
        }
        if (args.Length == 4 && args[0] == "decode" && TryTarget(args[1], out target))
        {
            // The files an input stands for, as the harness writes them (checksums repaired).
            Directory.CreateDirectory(args[3]);
            foreach (FuzzFile f in FuzzHarness.Decode(target, File.ReadAllBytes(args[2])))
            {
                File.WriteAllBytes(Path.Combine(args[3], f.Name), f.Bytes);
                Console.WriteLine($"{f.Name} {f.Bytes.Length} bytes");
            }
            return 0;
        }
        if (args.Length == 2 && args[0] == "seeds")
        {
            SeedMaker.Make(args[1]);
            return 0;
        }
        Console.Error.WriteLine("usage: VmClone.Fuzz vhdx|vmdk|vhd|qcow2|chain          (under afl-fuzz; input on stdin)");
        Console.Error.WriteLine("       VmClone.Fuzz replay vhdx|vmdk|vhd|qcow2|chain [--all-phases] FILE...");
        Console.Error.WriteLine("       VmClone.Fuzz decode vhdx|vmdk|vhd|qcow2|chain FILE FOLDER");
        Console.Error.WriteLine("       VmClone.Fuzz seeds FOLDER");
        return 2;
    }

    private static bool TryTarget(string name, out FuzzTarget target) => Enum.TryParse(name, ignoreCase: true, out target);

    private static void Serve(FuzzTarget target)
    {
        // Created on the first input, in the worker: the server process that talks to afl-fuzz
        // runs this same Main and must not touch the disk.
        FuzzHarness? harness = null;
        var input = new MemoryStream();
        Fuzzer.OutOfProcess.Run(stream =>
        {
            harness ??= new FuzzHarness(target, Environment.GetEnvironmentVariable("VMCLONE_FUZZ_WORK"));
            input.SetLength(0);
            stream.CopyTo(input);
            harness.Run(input.GetBuffer().AsSpan(0, (int)input.Length));
        });
    }

    private static int Replay(FuzzTarget target, string[] files, bool allPhases)
    {
        int failed = 0;
        using var harness = new FuzzHarness(target);
        foreach (string file in files)
        {
            try
            {
                harness.Run(File.ReadAllBytes(file), allPhases);
                Console.WriteLine($"ok      {file}");
            }
            catch (Exception ex)
            {
                failed++;
                Console.WriteLine($"FAILED  {file}");
                Console.WriteLine(ex.ToString());
            }
        }
        return failed == 0 ? 0 : 1;
    }
}
