# Throughput and p99 latency against offered load, from perf/run.sh's
# sweep. Called as:
#   gnuplot -e "data='sweep.tsv'; out='perf/load-latency.png'; title='...'" perf/plot.gp
# data columns (tab separated, '#' comments): offered MiB/s, achieved
# MiB/s, p50 ms, p99 ms, p99.9 ms, offered percent of the closed-loop max.
set terminal pngcairo size 1000,600 noenhanced font ",11"
set output out
set title title
set datafile separator "\t"
set key top left
set grid
set xlabel "offered load (MiB/s of 1 KiB records, open loop)"
set ylabel "throughput acknowledged (MiB/s)"
set y2label "produce latency (ms, log scale)"
set logscale y2
set ytics nomirror
set y2tics
set xrange [0:*]
set yrange [0:*]
plot data using 1:2 with linespoints lw 2 pt 7 title "throughput", \
     data using 1:1 with lines dt 2 lc rgb "gray" title "offered = acknowledged", \
     data using 1:4 axes x1y2 with linespoints lw 2 pt 5 title "p99 latency", \
     data using 1:3 axes x1y2 with linespoints lw 1 pt 4 dt 3 title "p50 latency"
